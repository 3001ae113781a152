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
# No reconnect-ms on the chardev: QEMU 10.0's vhost-user-snd-pci cannot start with it
# ("Failed to set msg fds. vhost_backend_init failed: Protocol error": the device does
# not wait for the chardev's background connection), nor repeat the vhost-user handshake
# after a reconnect. A paravox restart therefore costs the running guest its card until
# the VM restarts; with the socket held by systemd (paravox-vm@.socket) the VM may start
# before paravox does.
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
    -chardev socket,id=vsnd,path="$SOCKET" \
    -device vhost-user-snd-pci,chardev=vsnd,controls=on \
    -drive file="$DISK",if=virtio \
    -nic user,model=virtio-net-pci
