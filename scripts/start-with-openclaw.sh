#!/bin/bash
# Runs the OpenClaw gateway and openclaw-trace side by side in one container
# (a Fly machine's process), as the same user, and keeps the sidecar alive:
#
#   start-with-openclaw.sh [GATEWAY COMMAND...]
#
# - The gateway command is the arguments; without any,
#   OPENCLAW_TRACE_GATEWAY_COMMAND (split on spaces, no shell quoting); without
#   that either: openclaw gateway run --allow-unconfigured --port 3000 --bind lan.
#   Give it in the variable when the sidecar should find the gateway by its
#   command line (TRACE_AGENT_PROCESS): the arguments would show in this
#   script's command line too, and this script, older than the gateway,
#   would be taken for the agent.
# - openclaw-trace runs with this script's environment (its TRACE_*
#   variables) and user. It must be the gateway's user: OpenClaw creates its
#   log and database files 0600, so a sidecar running as anyone else could
#   read neither.
# - When the sidecar exits or is killed while the gateway runs, it is started
#   again after 1 s, then 2, 4, 8, 16, 30, 30... s while it keeps dying; the
#   delay goes back to 1 s once it has stayed up 60 s. Each restart is logged.
# - SIGINT and SIGTERM are passed on to both (Fly stops a machine with its
#   kill_signal, SIGINT by default, and kills it kill_timeout seconds later);
#   the sidecar finishes its shutdown within 4.5 s.
# - When the gateway exits, for any reason, the sidecar is stopped (SIGTERM)
#   and the script exits with the gateway's status, so the platform sees the
#   gateway's outcome. The sidecar's own exits never end the script.
#
# Settings (environment; seconds as whole numbers):
#   OPENCLAW_TRACE_BIN                the sidecar (default: openclaw-trace on PATH)
#   OPENCLAW_TRACE_RESTART_DELAY      first restart delay (default 1)
#   OPENCLAW_TRACE_RESTART_MAX_DELAY  the cap (default 30)
#   OPENCLAW_TRACE_STABLE_AFTER       uptime that resets the delay (default 60)
#   OPENCLAW_TRACE_STOP_WAIT          time the sidecar gets to stop once the
#                                     gateway has exited, before SIGKILL (default 5)
#
# The script logs JSON lines on stdout, like the sidecar, with
# "service":"start-with-openclaw". It needs bash 5.1 or later (wait -n -p);
# OpenClaw's images are Debian bookworm (bash 5.2).

set -u

sidecar_bin=${OPENCLAW_TRACE_BIN:-openclaw-trace}
first_delay=${OPENCLAW_TRACE_RESTART_DELAY:-1}
max_delay=${OPENCLAW_TRACE_RESTART_MAX_DELAY:-30}
stable_after=${OPENCLAW_TRACE_STABLE_AFTER:-60}
stop_wait=${OPENCLAW_TRACE_STOP_WAIT:-5}

if [ $# -eq 0 ] && [ -n "${OPENCLAW_TRACE_GATEWAY_COMMAND:-}" ]; then
    read -r -a gateway_command <<<"$OPENCLAW_TRACE_GATEWAY_COMMAND"
    set -- "${gateway_command[@]}"
fi
if [ $# -eq 0 ]; then
    set -- openclaw gateway run --allow-unconfigured --port 3000 --bind lan
fi

# One JSON line: log LEVEL MESSAGE [KEY VALUE]... (values are numbers or
# strings without quotes or backslashes, which is all this script logs).
log() {
    local level=$1 msg=$2 line
    shift 2
    line=$(printf '{"msg":"%s","level":"%s","ts":"%s","service":"start-with-openclaw"' \
        "$msg" "$level" "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)")
    while [ $# -ge 2 ]; do
        case $2 in
            '' | *[!0-9]*) line+=$(printf ',"%s":"%s"' "$1" "$2") ;;
            *) line+=$(printf ',"%s":%s' "$1" "$2") ;;
        esac
        shift 2
    done
    printf '%s}\n' "$line"
}

for setting in first_delay max_delay stable_after stop_wait; do
    case ${!setting} in
        '' | *[!0-9]*)
            log ERROR "restart settings must be whole numbers of seconds" "$setting" "${!setting}"
            exit 2
            ;;
    esac
done

# Children run with SIGINT and SIGQUIT at their defaults: bash starts
# background commands with them ignored (and a shell started so cannot trap
# them), so a forwarded SIGINT would be lost on any child that does not
# install its own handler. coreutils' env resets them.
spawn() {
    env --default-signal=INT,QUIT "$@" &
}

sidecar_pid=""
sidecar_started=0
sidecar_restarts=0
sleeper_pid=""
stopping=""
delay=$first_delay

start_sidecar() {
    spawn "$sidecar_bin"
    sidecar_pid=$!
    sidecar_started=$SECONDS
}

forward() {
    local signal=$1
    stopping=$signal
    log INFO "passing the signal on to the gateway and openclaw-trace" signal "$signal" \
        gateway_pid "$gateway_pid" sidecar_pid "${sidecar_pid:-none}"
    kill -s "$signal" "$gateway_pid" 2>/dev/null
    [ -n "$sidecar_pid" ] && kill -s "$signal" "$sidecar_pid" 2>/dev/null
    if [ -n "$sleeper_pid" ]; then
        kill "$sleeper_pid" 2>/dev/null
        sleeper_pid=""
    fi
}
trap 'forward INT' INT
trap 'forward TERM' TERM
# A shell started with SIGINT ignored (a background job of another
# non-interactive shell) cannot trap it: say so, since Fly stops machines
# with SIGINT. Under Fly's init and tini it is not ignored.
if read -r _ ignored < <(grep '^SigIgn:' /proc/$$/status 2>/dev/null) &&
    (((16#$ignored & 2) != 0)); then
    log WARN "started with SIGINT ignored: it cannot be passed on; stop with SIGTERM"
fi

start_sidecar
spawn "$@"
gateway_pid=$!
log INFO "started the gateway and openclaw-trace" gateway_pid "$gateway_pid" \
    sidecar_pid "$sidecar_pid" gateway "$1"

while :; do
    waiting=("$gateway_pid")
    [ -n "$sidecar_pid" ] && waiting+=("$sidecar_pid")
    [ -n "$sleeper_pid" ] && waiting+=("$sleeper_pid")
    exited=""
    wait -n -p exited "${waiting[@]}"
    status=$?
    # A trapped signal ends the wait with nobody reaped; wait again.
    [ -z "${exited:-}" ] && continue

    if [ "$exited" = "$gateway_pid" ]; then
        gateway_status=$status
        break
    fi

    if [ "$exited" = "$sidecar_pid" ]; then
        sidecar_pid=""
        if [ -n "$stopping" ]; then
            log INFO "openclaw-trace stopped" status "$status"
            continue
        fi
        if [ $((SECONDS - sidecar_started)) -ge "$stable_after" ]; then
            delay=$first_delay
        fi
        log WARN "openclaw-trace exited; restarting it" status "$status" \
            restart_in_s "$delay" restarts "$sidecar_restarts"
        sleep "$delay" &
        sleeper_pid=$!
        delay=$((delay * 2 > max_delay ? max_delay : delay * 2))
        continue
    fi

    if [ "$exited" = "$sleeper_pid" ]; then
        sleeper_pid=""
        [ -n "$stopping" ] && continue
        start_sidecar
        sidecar_restarts=$((sidecar_restarts + 1))
        log INFO "openclaw-trace restarted" sidecar_pid "$sidecar_pid" restarts "$sidecar_restarts"
    fi
done

log INFO "the gateway exited; stopping openclaw-trace" status "$gateway_status"
if [ -n "$sleeper_pid" ]; then
    kill "$sleeper_pid" 2>/dev/null
fi
if [ -n "$sidecar_pid" ]; then
    [ -z "$stopping" ] && kill -s TERM "$sidecar_pid" 2>/dev/null
    # Polled rather than waited on, so that a sidecar that does not stop is
    # killed after stop_wait seconds.
    deadline=$((SECONDS + stop_wait))
    while kill -0 "$sidecar_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
        sleep 0.1
    done
    if kill -0 "$sidecar_pid" 2>/dev/null; then
        log WARN "openclaw-trace did not stop in time; killing it" stop_wait_s "$stop_wait"
        kill -s KILL "$sidecar_pid" 2>/dev/null
    fi
    wait "$sidecar_pid"
    log INFO "openclaw-trace stopped" status "$?"
fi
exit "$gateway_status"
