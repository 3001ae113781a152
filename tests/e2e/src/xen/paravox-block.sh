#!/bin/sh
# libxl's hotplug script for the domU's recording disk (`script=paravox-block` in
# /etc/xen/paravox-domu.cfg). Debian's `block` script needs bash and more tools than dom0
# has; for a whole block device all it has to do is tell blkback which one.
echo "paravox-block $* XENBUS_PATH=$XENBUS_PATH" >> /tmp/hotplug.log
case "$1" in
    add)
        device=$(xenstore-read "$XENBUS_PATH/params") || exit 1
        xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c %t:%T "$device")" \
            "$XENBUS_PATH/physical-device-path" "$device"
        ;;
esac
