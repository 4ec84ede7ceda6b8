//! `host top` driven in a real terminal (tmux): a person watches an
//! AI-coder session and a server, resizes the window, stops the server
//! from the keyboard, sees the host go and come back, and quits to a shell
//! that works.
//!
//! Needs tmux (`.ci/run` installs it). Without it the test fails saying
//! so, rather than passing without having looked at a terminal.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use host_tests::{RunningHost, host_bin, install_shipped_plugin};

/// A tmux server of our own (its own socket in the test's folder, no user
/// config), killed on drop, with one session running a plain shell.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    /// Fails the test, saying why, when tmux is not installed.
    fn require() {
        let present = Command::new("tmux").arg("-V").output();
        assert!(
            present.is_ok_and(|o| o.status.success()),
            "tmux is not installed, and this test drives `host top` in a real terminal through it: \
             install it (`apt-get install -y tmux`; .ci/run does)"
        );
    }

    fn start(dir: &Path, width: u16, height: u16) -> Tmux {
        Tmux::require();
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            &w,
            "-y",
            &h,
            "env",
            "PS1=$ ",
            "sh",
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// Types `keys` (tmux key names: `Down`, `Enter`, `q`, ...).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    /// A line typed into the shell, then Enter.
    fn type_line(&self, line: &str) {
        assert!(
            self.run(&["send-keys", "-t", "top", "-l", line])
                .status
                .success()
        );
        self.keys(&["Enter"]);
    }

    /// What the pane shows now.
    fn pane(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the pane satisfies `pred`; the pane then.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + crate::PATIENCE;
        loop {
            let pane = self.pane();
            if pred(&pane) {
                return pane;
            }
            assert!(
                Instant::now() < deadline,
                "the pane never showed {what}:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn resize(&self, width: u16, height: u16) {
        let (w, h) = (width.to_string(), height.to_string());
        let out = self.run(&["resize-window", "-t", "top", "-x", &w, "-y", &h]);
        assert!(out.status.success(), "resize-window: {out:?}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The line of the pane that mentions `word`.
fn row<'a>(pane: &'a str, word: &str) -> Option<&'a str> {
    pane.lines().find(|l| l.contains(word))
}

fn config(dir: &Path) -> std::path::PathBuf {
    let coder = dir.join("coder.sh");
    std::fs::write(
        &coder,
        "echo '{\"status\":\"running\",\"progress\":0.4,\"message\":\"writing tests\"}'\nexec sleep 300\n",
    )
    .unwrap();
    let config = dir.join("host.toml");
    std::fs::write(
        &config,
        format!(
            "[process.coder]\ncommand = \"sh {}\"\nkind = \"ai-coder\"\n\n\
             [process.web]\ncommand = \"echo serving; exec sleep 300\"\nkind = \"server\"\n",
            coder.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn top_shows_the_host_live_stops_the_selected_process_and_gives_the_shell_back() {
    Tmux::require();
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install_shipped_plugin("ai-coder-mapper", &plugins);
    let config = config(tmp.path());
    let state = tmp.path().join("state");
    let extra = ["--config", config.to_str().unwrap(), "--no-build"];
    let mut host = RunningHost::start(&plugins, &state, &extra);
    let api = host.api();
    api.wait_process("coder", |p| p["progress"] == 0.4 && p["state"] == "running");
    api.wait_process("web", |p| p["state"] == "running");

    let tmux = Tmux::start(tmp.path(), 120, 40);
    tmux.type_line(&format!(
        "{} top --state-dir {}",
        host_bin().display(),
        state.display()
    ));
    let pane = tmux.wait("both processes with the coder's progress", |p| {
        row(p, " coder ").is_some_and(|r| r.contains("40%") && r.contains("writing tests"))
            && row(p, " web ").is_some_and(|r| r.contains("running"))
    });
    let coder = row(&pane, " coder ").unwrap();
    assert!(
        coder.contains("AI") && coder.contains("ai-coder") && coder.contains("running"),
        "the AI-coder session is marked: {coder}\n{pane}"
    );
    assert!(coder.contains("██░░░░"), "a progress bar: {coder}");
    assert!(pane.contains("ai-coder-mapper"), "plugins listed:\n{pane}");

    // A small terminal still shows the processes and the keys.
    tmux.resize(80, 24);
    tmux.wait("the 80x24 layout", |p| {
        p.lines().count() <= 24 && row(p, " web ").is_some() && p.contains("s stop  r restart")
    });

    // Select web (processes are sorted by id: coder, web), ask to stop it,
    // confirm.
    tmux.keys(&["Down", "s"]);
    tmux.wait("the question", |p| {
        p.contains("Stop process web? y to confirm")
    });
    assert_eq!(
        api.get("/v1/processes/web").1["state"],
        "running",
        "nothing happens before the answer"
    );
    tmux.keys(&["y"]);
    api.wait_process("web", |p| p["state"] == "cancelled");
    tmux.wait("web cancelled", |p| {
        row(p, " web ").is_some_and(|r| r.contains("cancelled"))
    });
    assert_eq!(
        api.get("/v1/processes/coder").1["state"],
        "running",
        "only the selected process was stopped"
    );

    // The host goes away: top says so and keeps retrying; it comes back.
    assert!(host.terminate().unwrap().success());
    tmux.wait("host gone", |p| p.contains("host gone"));
    let mut host = RunningHost::start(&plugins, &state, &extra);
    host.api();
    tmux.wait("the restarted host", |p| {
        !p.contains("host gone") && row(p, " web ").is_some_and(|r| r.contains("running"))
    });

    // q leaves, and the shell works (a terminal left raw would not run
    // the line: Enter would not end it).
    tmux.keys(&["q"]);
    tmux.wait("the screen restored", |p| !p.contains("Processes ("));
    tmux.type_line("echo back-$((40+2))");
    tmux.wait("the shell's answer", |p| p.contains("back-42"));
    assert!(host.terminate().unwrap().success());
}
