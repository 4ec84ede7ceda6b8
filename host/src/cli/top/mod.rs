//! `host top`: a live terminal view of a running host (seed 000's "TUI
//! process view"), drawn with ratatui on crossterm.
//!
//! - `model`: what is shown, fed by snapshots; `patch`: events applied to it;
//! - `view`, `panels`: drawing a model (pure; tested on `TestBackend`);
//! - `input`: keys, and which of them ask the host to act;
//! - `feed`: the connection (snapshots through `ApiClient`, the SSE stream
//!   through the CLI's own SSE client), reconnecting when the host goes.
//!
//! This file owns the terminal and the loop: raw mode and the alternate
//! screen are left on every way out (quit, error, a signal, a panic), since
//! a terminal left raw is unusable to the person who ran us.

mod feed;
mod input;
mod model;
mod panels;
mod patch;
mod view;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};

use super::client::ConnectArgs;
use feed::{Msg, Slot};
use input::Intent;
use model::{Link, Model};
use view::Theme;

/// Flags of `host top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// How often to take a full snapshot (durations, CPU, cycles); events
    /// update the screen in between. At least 200ms.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = interval)]
    interval: Duration,
}

fn interval(text: &str) -> Result<Duration, String> {
    let d = crate::supervisor::duration::parse(text)?;
    if d < Duration::from_millis(200) {
        return Err("must be at least 200ms".into());
    }
    Ok(d)
}

/// The terminal, in raw mode on the alternate screen until dropped.
struct Screen(ratatui::DefaultTerminal);

impl Screen {
    fn open() -> anyhow::Result<Screen> {
        // `try_init` also installs a panic hook that restores the terminal
        // before the panic message is printed.
        match ratatui::try_init() {
            Ok(terminal) => Ok(Screen(terminal)),
            Err(e) => {
                ratatui::restore();
                Err(e).context("cannot set up the terminal")
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub(super) fn run(args: TopArgs) -> anyhow::Result<ExitCode> {
    if args.connect.json {
        bail!("`host top` draws on a terminal and has no --json; scripts want `host ps --json`");
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("`host top` needs a terminal; in scripts use `host ps`, `host events -f`");
    }
    let theme = Theme {
        colour: super::output::colour(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(app(args, theme))
}

async fn app(args: TopArgs, theme: Theme) -> anyhow::Result<ExitCode> {
    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    let refresh = Arc::new(Notify::new());
    let slot = Slot::default();
    let mut feed = tokio::spawn(feed::run(
        args.connect.clone(),
        tx.clone(),
        refresh.clone(),
        slot.clone(),
        args.interval,
    ));
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut screen = Screen::open()?;
    let mut keys = EventStream::new();
    let mut model = Model::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut reading_output = false;
    let outcome = loop {
        screen
            .0
            .draw(|f| view::render(f, &model, theme))
            .context("cannot draw")?;
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) => match input::on_key(&mut model, key) {
                    Some(Intent::Quit) => break Ok(()),
                    Some(Intent::Act(pending)) => {
                        let client = slot.lock().clone();
                        match client {
                            Some(client) => {
                                model.say(format!("{} {}…", pending.verb.word(), pending.target), false);
                                let tx = tx.clone();
                                tokio::spawn(async move {
                                    let _ = tx.send(feed::act(client, pending).await).await;
                                });
                            }
                            None => model.say("the host is gone; try again once it is back", true),
                        }
                    }
                    None => {}
                },
                // A resize: the next draw fits the new size.
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(anyhow::Error::new(e).context("cannot read the terminal")),
                None => break Ok(()),
            },
            msg = rx.recv() => {
                // Everything already queued, then one draw.
                let mut next = msg;
                let mut taken = 0;
                while let Some(msg) = next {
                    if matches!(msg, Msg::Output { .. }) {
                        reading_output = false;
                    }
                    apply(&mut model, msg, &refresh);
                    taken += 1;
                    next = if taken < 4096 { rx.try_recv().ok() } else { None };
                }
            }
            _ = tick.tick() => {}
            _ = term.recv() => break Ok(()),
            _ = hup.recv() => break Ok(()),
            // The feed only ends by panicking (it retries a lost host
            // forever); the panic hook has restored the terminal, so stop
            // drawing on it.
            ended = &mut feed => break Err(anyhow::anyhow!("the connection task ended: {ended:?}")),
        }
        if model.wants_snapshot {
            model.wants_snapshot = false;
            refresh.notify_one();
        }
        if model.wants_output && !reading_output {
            let client = slot.lock().clone();
            if let Some(client) = client {
                model.wants_output = false;
                reading_output = true;
                let (id, next) = (model.output.id.clone(), model.output.next);
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(feed::output(client, id, next).await).await;
                });
            }
        }
    };
    feed.abort();
    drop(screen);
    outcome.map(|()| ExitCode::SUCCESS)
}

/// Applies one message of the feed or of an action to the model.
fn apply(model: &mut Model, msg: Msg, refresh: &Notify) {
    match msg {
        Msg::Up(addr) => model.link = Link::Up(addr),
        Msg::Gone(reason) => model.link = Link::Gone(reason),
        Msg::Snapshot(snapshot) => model.apply_snapshot(snapshot),
        Msg::Event(event) => model.apply_event(&event),
        // A failed read is retried at the next line the process prints.
        Msg::Output { id, lines, next } => {
            if let Some(next) = next {
                model.apply_output(&id, lines, next);
            }
        }
        Msg::Done(result) => {
            match result {
                Ok(text) => model.say(text, false),
                Err(text) => model.say(text, true),
            }
            refresh.notify_one();
        }
    }
}
