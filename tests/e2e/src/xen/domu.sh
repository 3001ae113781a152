#!/bin/sh
# PID 1 of the PV domU in paravox's Xen end-to-end test (built by tests/e2e/src/xen/images.rs).
#
# Loads snd_xen_front (its probe waits for the backend to connect), plays the test tone
# with aplay, records with arecord, copies the recording onto /dev/xvda (a disk dom0
# passes through from the host), and powers off. Reports on its console, which dom0
# follows and forwards to the serial console:
#   PARAVOX-<KIND> name=NAME key=value ...   KIND: BOOT READY BEGIN END RESULT FAIL SHUTDOWN
# Values never contain spaces.

/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

marker() { echo "PARAVOX-$*"; }
uptime_seconds() { cut -d ' ' -f 1 /proc/uptime; }
finish() {
    sync
    marker "SHUTDOWN name=domU uptime=$(uptime_seconds)"
    poweroff -f
}
fail() {
    marker "FAIL name=domU reason=$1"
    echo "--- dmesg tail ---"
    dmesg | tail -n 40
    finish
}
# param NAME DEFAULT: the value of paravox.NAME=... on the kernel command line.
param() {
    for word in $(cat /proc/cmdline); do
        case "$word" in
            paravox.$1=*) echo "${word#*=}"; return ;;
        esac
    done
    echo "$2"
}
difference() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }

marker "BOOT name=domU uptime=$(uptime_seconds)"
for module in $(cat /etc/paravox/modules); do
    insmod "/lib/modules/$module.ko" || fail "insmod-$module"
done
# snd_xen_front's probe has already waited for the backend (up to its own timeout).
grep -q . /proc/asound/cards 2>/dev/null && ! grep -q "no soundcards" /proc/asound/cards ||
    fail no-sound-card
cat /proc/asound/cards /proc/asound/pcm
marker "READY name=domU uptime=$(uptime_seconds)"

# timed NAME LIMIT COMMAND...: runs COMMAND (killed after LIMIT s) between BEGIN and END
# markers and reports its wall time.
timed() {
    name=$1
    limit=$2
    shift 2
    start=$(uptime_seconds)
    marker "BEGIN name=$name uptime=$start"
    timeout -s KILL "$limit" "$@"
    status=$?
    end=$(uptime_seconds)
    marker "END name=$name status=$status uptime=$end"
    marker "RESULT name=${name}_seconds value=$(difference "$start" "$end")"
    [ "$status" -eq 0 ] || fail "$name-exit-status-$status"
}

# The short tone twice first: once to warm up (the first aplay after boot starts
# seconds slower), then timed: its wall time beyond its length is aplay's own cost
# (start-up under an emulated CPU, hw_params, drain), which the host subtracts.
timeout -s KILL 60 aplay -q -D hw:0,0 "/audio/$(param short_file missing.wav)" || fail aplay-warm-up
timed aplay_short 60 aplay -D hw:0,0 "/audio/$(param short_file missing.wav)"
timed aplay 60 aplay -D hw:0,0 "/audio/$(param file missing.wav)"
timed arecord 60 arecord -D hw:0,0 -d "$(param seconds 3)" -f S16_LE -r 48000 -c 2 -t wav /tmp/recording.wav
marker "RESULT name=recording_bytes value=$(wc -c < /tmp/recording.wav)"
[ -b /dev/xvda ] || fail no-recording-disk
cat /tmp/recording.wav > /dev/xvda || fail copy-recording-to-disk
echo "--- domU dmesg (sound and Xen lines) ---"
dmesg | grep -i -E "snd|sound|xen|vsnd|blkfront"
finish
