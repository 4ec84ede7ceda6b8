#!/bin/sh
# A stand-in AI coder: run as a process of kind `ai-coder`, it reports seed
# 000's statuses as JSON lines on stdout, which the ai-coder-mapper plugin
# turns into the process's reported state, progress and message.
#
#   sh ai-coder.sh "add a login form"      # about 20 s
#   AI_CODER_STEP=0.2 sh ai-coder.sh       # faster, for tests
#
# It does no coding: it only walks through creating → running → paused
# (waiting for a review) → running → completed, as a real coder's wrapper
# would report them.
set -eu
step=${AI_CODER_STEP:-2}
# Quotes and backslashes would break the JSON lines: leave them out.
task=$(printf '%s' "${1:-add a login form}" | tr -d '"\\')

say() {
    printf '{"status":"%s","progress":%s,"message":"%s"}\n' "$1" "$2" "$3"
}

say creating 0 "setting up a workspace for: $task"
sleep "$step"
say running 0.1 "reading the code base"
sleep "$step"
say running 0.3 "planning: $task"
sleep "$step"
say running 0.5 "writing the change"
sleep "$step"
say running 0.6 "writing tests"
sleep "$step"
say paused 0.7 "waiting for review"
sleep "$step"
sleep "$step"
say running 0.8 "applying review comments"
sleep "$step"
say running 0.9 "running the tests"
sleep "$step"
echo "(a coder may print anything else too; only JSON status lines count)"
sleep "$step"
say completed 1 "done: $task"
