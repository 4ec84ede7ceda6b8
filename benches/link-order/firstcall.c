// firstcall ADDRS OUT -- PROGRAM ARGS...: run PROGRAM under ptrace with a
// one-shot breakpoint (int3) at every address in ADDRS (hex offsets from the
// executable's load base, one per line: its functions' entries); write the
// offsets hit, in the order first hit, to OUT (16 hex digits, as nm prints).
// Each breakpoint traps once, then its byte is put back: the program runs
// at nearly full speed after its first pass through a function. Threads and
// forked children are followed (a child runs the parent's code until it
// execs); a child that execs is let go. SIGTERM/SIGINT to firstcall are
// forwarded to PROGRAM. Used by generate.sh; x86-64 Linux only.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t *addrs; static unsigned char *orig; static char *hit; static size_t n;
static pid_t root;

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static long find(uint64_t a) {
    size_t lo = 0, hi = n;
    while (lo < hi) { size_t m = (lo + hi) / 2; if (addrs[m] < a) lo = m + 1; else hi = m; }
    return lo < n && addrs[lo] == a ? (long)lo : -1;
}
static void fwd(int sig) { if (root > 0) kill(root, sig); }

int main(int argc, char **argv) {
    if (argc < 5 || strcmp(argv[3], "--")) {
        fprintf(stderr, "usage: firstcall ADDRS OUT -- PROGRAM [ARGS...]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 1; }
    size_t cap = 1 << 16; addrs = malloc(cap * 8);
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (n == cap) addrs = realloc(addrs, (cap *= 2) * 8);
        addrs[n++] = strtoull(line, 0, 16);
    }
    fclose(f);
    qsort(addrs, n, 8, cmp);
    size_t m = 0; for (size_t i = 0; i < n; i++) if (!m || addrs[i] != addrs[m - 1]) addrs[m++] = addrs[i]; n = m;
    orig = malloc(n); hit = calloc(n, 1);
    FILE *out = fopen(argv[2], "w");
    if (!out) { perror(argv[2]); return 1; }

    root = fork();
    if (!root) { ptrace(PTRACE_TRACEME, 0, 0, 0); execv(argv[4], argv + 4); _exit(127); }
    signal(SIGTERM, fwd); signal(SIGINT, fwd);
    int st; waitpid(root, &st, 0);  // stopped at exec
    ptrace(PTRACE_SETOPTIONS, root, 0, PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
    char path[64]; snprintf(path, sizeof path, "/proc/%d/maps", root);
    uint64_t base = 0;
    f = fopen(path, "r");
    if (!f || fscanf(f, "%lx", &base) != 1) { fprintf(stderr, "firstcall: cannot read %s\n", path); return 1; }
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/mem", root);
    int mem = open(path, O_RDWR);
    for (size_t i = 0; i < n; i++) {
        addrs[i] += base;
        if (pread(mem, &orig[i], 1, addrs[i]) != 1) { perror("pread"); return 1; }
        unsigned char cc = 0xcc; pwrite(mem, &cc, 1, addrs[i]);
    }
    close(mem);
    fprintf(stderr, "firstcall: %zu breakpoints at base %lx\n", n, base);
    ptrace(PTRACE_CONT, root, 0, 0);
    size_t hits = 0;
    while (1) {
        pid_t pid = waitpid(-1, &st, __WALL);
        if (pid < 0) { if (errno == EINTR) continue; break; }
        if (WIFEXITED(st) || WIFSIGNALED(st)) continue;
        if (!WIFSTOPPED(st)) continue;
        int sig = WSTOPSIG(st), ev = st >> 16, deliver = 0;
        if (ev == PTRACE_EVENT_EXEC && pid != root) { ptrace(PTRACE_DETACH, pid, 0, 0); continue; }
        if (ev) { ptrace(PTRACE_CONT, pid, 0, 0); continue; }
        if (sig == SIGTRAP) {
            struct user_regs_struct r; ptrace(PTRACE_GETREGS, pid, 0, &r);
            long i = find(r.rip - 1);
            if (i >= 0) {
                if (!hit[i]) { hit[i] = 1; hits++; fprintf(out, "%016lx\n", addrs[i] - base); }
                // Restore in this process's memory (threads share it; a forked
                // child has its own copy, restored when it hits).
                snprintf(path, sizeof path, "/proc/%d/mem", pid);
                int fd = open(path, O_RDWR);
                pwrite(fd, &orig[i], 1, addrs[i]); close(fd);
                r.rip -= 1; ptrace(PTRACE_SETREGS, pid, 0, &r);
            } else deliver = sig;
        } else if (sig == SIGSTOP && pid != root) {
            deliver = 0;  // the initial stop of a new thread or child
        } else deliver = sig;
        ptrace(PTRACE_CONT, pid, 0, deliver);
    }
    fclose(out);
    fprintf(stderr, "firstcall: %zu of %zu hit\n", hits, n);
    return 0;
}
