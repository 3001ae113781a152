#!/bin/sh
# PID 1 of paravox's end-to-end test guest (built by tests/e2e/src/guest.rs).
#
# Loads the sound modules, waits for the virtio sound card, runs the scenario named on the
# kernel command line (paravox.scenario=...) and reports on the serial console with lines
# the host parses:
#   PARAVOX-<KIND> key=value ...     KIND: BOOT READY BEGIN END RESULT SKIP FAIL DONE
# Values never contain spaces. Then it powers the machine off.

/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

marker() { echo "PARAVOX-$*"; }
uptime_seconds() { cut -d ' ' -f 1 /proc/uptime; }
finish() {
    sync
    marker "DONE uptime=$(uptime_seconds)"
    poweroff -f
}
fail() {
    marker "FAIL reason=$1"
    echo "--- dmesg tail ---"
    dmesg | tail -n 25
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

marker "BOOT uptime=$(uptime_seconds)"
for module in $(cat /etc/paravox/modules); do
    insmod "/lib/modules/$module.ko" || fail "insmod-$module"
done

tries=0
until grep -qi virtio /proc/asound/cards 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || fail no-virtio-sound-card
    sleep 0.1
done
cat /proc/asound/cards /proc/asound/pcm
PCM=$(param pcm hw:0,0)
marker "READY uptime=$(uptime_seconds)"

# timed NAME COMMAND...: runs COMMAND between BEGIN and END markers, reports its wall time.
timed() {
    name=$1
    shift
    start=$(uptime_seconds)
    marker "BEGIN name=$name uptime=$start"
    "$@"
    status=$?
    end=$(uptime_seconds)
    marker "END name=$name status=$status uptime=$end"
    marker "RESULT name=${name}_seconds value=$(difference "$start" "$end")"
    [ "$status" -eq 0 ] || fail "$name-exit-status-$status"
}

# The first simple mixer control of card 0 with a playback volume.
playback_volume_control() {
    amixer -c 0 scontrols 2>/dev/null |
        sed -n "s/^Simple mixer control '\(.*\)',[0-9]*$/\1/p" |
        while read -r control; do
            if amixer -c 0 sget "$control" | grep -q 'Capabilities:.*pvolume'; then
                echo "$control"
                break
            fi
        done
}

set_volume() {
    control=$(playback_volume_control)
    if [ -z "$control" ]; then
        marker "SKIP name=mixer reason=card-has-no-playback-volume-control"
        finish
    fi
    marker "RESULT name=mixer_control value=$(echo "$control" | tr ' ' '_')"
    amixer -c 0 -- sset "$control" "$1dB" || fail amixer-sset
    amixer -c 0 sget "$control"
}

scenario_play() {
    volume=$(param volume_db '')
    [ -z "$volume" ] || set_volume "$volume"
    if [ "$(param report_mixer '')" = 1 ]; then
        control=$(playback_volume_control)
        marker "RESULT name=playback_volume_control value=$(echo "${control:-none}" | tr ' ' '_')"
    fi
    timed aplay aplay -D "$PCM" "/audio/$(param file missing.wav)"
}

scenario_record() {
    tries=0
    while [ ! -b /dev/vda ]; do
        tries=$((tries + 1))
        [ "$tries" -le 200 ] || fail no-recording-disk
        sleep 0.1
    done
    timed arecord arecord -D "$PCM" -d "$(param seconds 3)" -f S16_LE -r 48000 -c 2 -t wav /tmp/recording.wav
    marker "RESULT name=recording_bytes value=$(wc -c < /tmp/recording.wav)"
    cat /tmp/recording.wav > /dev/vda || fail copy-recording-to-disk
}

scenario_idle() {
    timed idle sleep "$(param seconds 10)"
}

scenario=$(param scenario none)
case "$scenario" in
    play) scenario_play ;;
    record) scenario_record ;;
    idle) scenario_idle ;;
    *) fail "unknown-scenario-$scenario" ;;
esac
finish
