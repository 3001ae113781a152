#!/bin/sh
# PID 1 of dom0 in paravox's Xen end-to-end test (built by tests/e2e/src/xen/images.rs).
#
# Starts the Xen toolstack (xenstored, xen-init-dom0, xenconsoled), runs paravox as the
# sndif backend, creates the PV domU (/etc/xen/paravox-domu.cfg, `vsnd = [...]`), follows
# its console, and saves everything the host checks onto /dev/vda as a tar archive.
# Reports on the serial console with lines the host parses:
#   PARAVOX-<KIND> name=NAME key=value ...   KIND: BOOT READY BEGIN END RESULT NOTE FAIL DONE
# The domU's own markers are forwarded as they appear, except its FAIL, which becomes a
# NOTE here and a FAIL once the evidence is saved. Values never contain spaces.

/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /etc/paravox/xen.conf
. /etc/paravox/run.conf
export PATH="$PATH:$XEN_BIN"

RESULTS=/results
CONSOLE_LOG=/var/log/xen/console/guest-$DOMU_NAME.log
PARAVOX_PID=
failure=

marker() { echo "PARAVOX-$*"; }
uptime_seconds() { cut -d ' ' -f 1 /proc/uptime; }
difference() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }
# "PID NAME TICKS" per /proc stat file: utime + stime in clock ticks (USER_HZ, 100 on
# x86), the fields counted after the parenthesised name (which may hold spaces). One
# awk for every file: each process started in a PV dom0 under TCG costs real time.
STAT_TICKS='{
    first = index($0, "("); last = length($0)
    while (substr($0, last, 1) != ")") last--
    name = substr($0, first + 1, last - first - 1); gsub(/ /, "_", name)
    split(substr($0, last + 2), field, " ")
    print $1, name, field[12] + field[13]
}'
paravox_ticks() {
    value=$(awk "$STAT_TICKS" "/proc/$PARAVOX_PID/stat" 2>/dev/null | awk '{ print $3 }')
    echo "${value:-0}"
}
# "TID NAME TICKS NS" per thread: the stat file's ticks, then the first field of its
# schedstat, the nanoseconds the scheduler's clock counted it on a CPU. Ticks are
# sampled (a thread charged whole ticks when it happens to run at one); the scheduler's
# clock is exact, but only for threads alive at both ends of a window.
THREAD_LINE='
    index($0, "(") {
        first = index($0, "("); last = length($0)
        while (substr($0, last, 1) != ")") last--
        name = substr($0, first + 1, last - first - 1); gsub(/ /, "_", name)
        split(substr($0, last + 2), field, " ")
        tid = $1; ticks = field[12] + field[13]
        next
    }
    tid != "" { print tid, name, ticks, $1; tid = "" }'
# Each of paravox's threads, into $RESULTS/threads-$1.txt. One cat and one awk: each
# process started in a PV dom0 under TCG costs real time.
paravox_threads() {
    files=
    for task in /proc/"$PARAVOX_PID"/task/*; do files="$files $task/stat $task/schedstat"; done
    # shellcheck disable=SC2086 # paths without spaces
    cat $files 2>/dev/null | awk "$THREAD_LINE" > "$RESULTS/threads-$1.txt"
}

# Saves the evidence onto /dev/vda, reports the first failure (if any) and powers off.
finish() {
    stop_paravox
    xl dmesg > "$RESULTS/xl-dmesg.txt" 2>&1
    dmesg > "$RESULTS/dom0-dmesg.txt" 2>&1
    xenstore-ls -f > "$RESULTS/xenstore-end.txt" 2>&1
    cp "$CONSOLE_LOG" "$RESULTS/domu-console.log" 2>/dev/null
    cp /var/log/xen/*.log /tmp/hotplug.log "$RESULTS/" 2>/dev/null
    if tar -cf /dev/vda -C "$RESULTS" .; then
        sync
        marker "RESULT name=results_saved value=1"
    else
        marker "NOTE name=results reason=tar-to-dev-vda-failed"
    fi
    [ -z "$failure" ] || marker "FAIL reason=$failure"
    marker "DONE uptime=$(uptime_seconds)"
    poweroff -f
}
fail() {
    [ -n "$failure" ] || failure=$1
    finish
}

# Whether process $1 still runs (an exited child stays a zombie until `wait`).
running() { [ -d "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# SIGTERM lets paravox finish the WAV header; SIGKILL after 10 s.
stop_paravox() {
    [ -n "$PARAVOX_PID" ] || return
    kill -TERM "$PARAVOX_PID" 2>/dev/null
    tries=0
    while running "$PARAVOX_PID" && [ "$tries" -lt 100 ]; do
        tries=$((tries + 1))
        sleep 0.1
    done
    if running "$PARAVOX_PID"; then
        marker "NOTE name=paravox reason=did-not-stop-on-SIGTERM"
        kill -KILL "$PARAVOX_PID"
    fi
    wait "$PARAVOX_PID"
    marker "RESULT name=paravox_exit_status value=$?"
    PARAVOX_PID=
}

marker "BOOT name=dom0 uptime=$(uptime_seconds)"
for module in $(cat /etc/paravox/modules); do
    insmod "/lib/modules/$module.ko" || fail "insmod-$module"
done
mkdir -p "$RESULTS" /dev/pts /run /var/lib/xen /var/lib/xenstored /var/log/xen/console /var/lib/paravox
mount -t devpts devpts /dev/pts
mount -t xenfs xenfs /proc/xen || fail mount-xenfs
ln -s /run /var/run
mkdir -p /run/xen /run/xenstored

# The toolstack, as Debian's xen-utils init script starts it.
xenstored --pid-file=/run/xenstored.pid || fail xenstored
xen-init-dom0 || fail xen-init-dom0
xenconsoled --log=guest --log-dir=/var/log/xen/console || fail xenconsoled
marker "READY name=xenstore uptime=$(uptime_seconds)"

echo "\$ paravox $PARAVOX_ARGS"
# shellcheck disable=SC2086 # the arguments are words without spaces
NO_COLOR=1 RUST_LOG=debug paravox $PARAVOX_ARGS > "$RESULTS/paravox.log" 2>&1 &
PARAVOX_PID=$!
# The backend is ready once it watches the vsnd directory: its own log says so.
tries=0
until grep -q "watching for vsnd devices" "$RESULTS/paravox.log"; do
    tries=$((tries + 1))
    running "$PARAVOX_PID" || { cat "$RESULTS/paravox.log"; wait "$PARAVOX_PID"; PARAVOX_PID=; fail paravox-exited; }
    [ "$tries" -le 300 ] || { marker "NOTE name=paravox reason=no-ready-line-after-30s"; break; }
    sleep 0.1
done
marker "READY name=paravox uptime=$(uptime_seconds)"

# paravox's CPU while nothing is connected: the baseline for the per-audio figure. The
# daemon finishes starting (its API, then its seccomp filter, the last step) after the
# backend watches; the window starts once it has.
tries=0
until grep -q "system calls" "$RESULTS/paravox.log"; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || { marker "NOTE name=paravox reason=no-sandbox-line-after-10s"; break; }
    sleep 0.1
done
# The thread snapshots are taken inside the process's window, not around it: the
# daemon may still be finishing its start when it says it is ready.
start=$(uptime_seconds)
ticks=$(paravox_ticks)
paravox_threads idle-start
sleep "$IDLE_SECONDS"
paravox_threads idle-end
marker "RESULT name=paravox_idle_cpu ticks=$(($(paravox_ticks) - ticks)) seconds=$(difference "$start" "$(uptime_seconds)")"

marker "BEGIN name=xl_create uptime=$(uptime_seconds)"
xl create /etc/xen/paravox-domu.cfg || fail xl-create
domid=$(xl domid "$DOMU_NAME") || fail xl-domid
marker "END name=xl_create domid=$domid uptime=$(uptime_seconds)"
xenstore-ls -f /local/domain/0/backend/vsnd > "$RESULTS/xenstore-created.txt" 2>&1

# Whether the domU still exists (libxl removes its XenStore directory when it is
# destroyed); much cheaper than starting xl under an emulated CPU.
domain_exists() { xenstore-exists "/local/domain/$domid" 2> /dev/null; }

# Busy and total clock ticks of all of dom0's vCPUs (total includes time Xen gave to
# other domains: steal), from /proc/stat.
dom0_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }

# One marker line from the domU: forward it; sample paravox's CPU around aplay and
# arecord; dump XenStore once the card is up.
domu_done=
handle_marker() {
    line=$1
    kind=${line%% *}
    case "$kind" in
        FAIL)
            domu_failure=$(echo "$line" | sed -n 's/.*reason=\([^ ]*\).*/\1/p')
            marker "NOTE name=domU-failed reason=${domu_failure:-unknown}"
            [ -n "$failure" ] || failure="domU-${domu_failure:-unknown}"
            return
            ;;
        SHUTDOWN) domu_done=1 ;;
    esac
    echo "PARAVOX-$line"
    case "$line" in
        "READY name=domU"*)
            {
                xenstore-ls -f /local/domain/0/backend/vsnd
                xenstore-ls -f "/local/domain/$domid/device/vsnd"
            } > "$RESULTS/xenstore-connected.txt" 2>&1
            ;;
        "BEGIN name=aplay"* | "BEGIN name=arecord"*)
            step=${line#BEGIN name=}
            step=${step%% *}
            paravox_threads "$step-start"
            step_ticks=$(paravox_ticks)
            step_dom0=$(dom0_ticks)
            step_start=$(uptime_seconds)
            ;;
        "END name=aplay"* | "END name=arecord"*)
            step=${line#END name=}
            step=${step%% *}
            marker "RESULT name=paravox_${step}_cpu ticks=$(($(paravox_ticks) - step_ticks)) seconds=$(difference "$step_start" "$(uptime_seconds)")"
            # shellcheck disable=SC2086 # two numbers each
            set -- $step_dom0 $(dom0_ticks)
            marker "RESULT name=dom0_${step}_cpu busy=$(($3 - $1)) total=$(($4 - $2))"
            paravox_threads "$step-end"
            ;;
    esac
}

# Follows the domU's console log (xenconsoled writes it as output arrives) until the
# domU reports SHUTDOWN or the domain is gone, within DOMU_DEADLINE seconds.
carriage_return=$(printf '\r')
tries=0
while [ ! -f "$CONSOLE_LOG" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || fail no-domU-console-log
    sleep 0.1
done
exec 3< "$CONSOLE_LOG"
partial=
polls=0
deadline_polls=$((DOMU_DEADLINE * 10))
while [ -z "$domu_done" ]; do
    if IFS= read -r line <&3; then
        line="$partial$line"
        partial=
        line=${line%"$carriage_return"}
        case "$line" in
            *PARAVOX-*) handle_marker "${line#*PARAVOX-}" ;;
        esac
        continue
    fi
    # End of the log so far; a partial line waits for its end.
    partial="$partial$line"
    polls=$((polls + 1))
    if [ "$polls" -ge "$deadline_polls" ]; then
        marker "NOTE name=domU reason=deadline-${DOMU_DEADLINE}s"
        xl destroy "$DOMU_NAME"
        fail domU-deadline
    fi
    if [ $((polls % 20)) -eq 0 ] && ! domain_exists; then
        break
    fi
    sleep 0.1
done
exec 3<&-

# The domU powers itself off after SHUTDOWN; wait for the domain to be gone.
tries=0
while domain_exists; do
    tries=$((tries + 1))
    if [ "$tries" -gt 60 ]; then
        marker "NOTE name=domU reason=still-running-30s-after-shutdown"
        xl destroy "$DOMU_NAME"
        break
    fi
    sleep 0.5
done
[ -n "$domu_done" ] || [ -n "$failure" ] || failure=domU-gone-without-shutdown
marker "END name=domU uptime=$(uptime_seconds)"
finish
