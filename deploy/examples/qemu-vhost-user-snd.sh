#!/bin/sh
# A QEMU guest with a paravox virtio-snd card (QEMU 8.2 or later for vhost-user-snd-pci).
#
# paravox serves the card on a vhost-user socket: a [[virtio]] entry in paravox.toml
# (socket = "/run/paravox/vm1.sock", controls = true) or
# `paravox serve --virtio-socket PATH --virtio-controls`.
#
# vhost-user needs the guest's RAM in shared memory that QEMU can pass to paravox as a file
# descriptor: a memfd backend with share=on, used as the machine's RAM. Its size must be
# the guest's memory size (-m).
#
# The socket chardev reconnects (reconnect-ms) so the guest survives a paravox restart.
# The device's controls=on passes paravox's volume and mute controls to the guest; the
# card must offer them (controls = true). Without both, leave controls=on out: the plain
# `-device vhost-user-snd-pci,chardev=vsnd` gives a card without mixer controls.
set -eu
SOCKET=${SOCKET:-/run/paravox/vm1.sock}
MEMORY=${MEMORY:-2G}
DISK=${DISK:-guest.qcow2}

exec qemu-system-x86_64 \
    -enable-kvm -cpu host -smp 2 -m "$MEMORY" \
    -object memory-backend-memfd,id=mem,size="$MEMORY",share=on \
    -machine q35,memory-backend=mem \
    -chardev socket,id=vsnd,path="$SOCKET",reconnect-ms=1000 \
    -device vhost-user-snd-pci,chardev=vsnd,controls=on \
    -drive file="$DISK",if=virtio \
    -nic user,model=virtio-net-pci
