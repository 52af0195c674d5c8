#!/usr/bin/env bash
# Starts the real container engines the integration tests run against: a PRIVATE dockerd
# (its own data root, exec root, pid file and socket; no iptables, no bridge), with a busybox
# image imported from Debian's busybox-static. Installs what is missing from Debian.
#
#   tests/engines.sh start     install if needed, start (or reuse) the private dockerd
#   tests/engines.sh stop      stop it (the data root is kept, so a start resumes it)
#   tests/engines.sh status    say whether it runs, and where
#   tests/engines.sh env       print the variables the tests read
#   (start also starts a private containerd, which stop leaves running: see its section)
#
# The tests find the daemon through VIGIL_TEST_DOCKER_HOST, or at the well-known socket below.
set -euo pipefail

ROOT=${VIGIL_ENGINES_DIR:-/tmp/vigil-engines}
D=$ROOT/docker
SOCK=$D/docker.sock
HOST=unix://$SOCK
PIDFILE=$D/dockerd.pid
LOG=$D/dockerd.log
IMAGE=vigil-test/busybox:latest

say() { echo "engines: $*" >&2; }
die() { echo "engines: ERROR: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (dockerd needs it); run: sudo $0 ${1:-start}"
}

install_missing() {
    local missing=()
    [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
    command -v containerd >/dev/null || missing+=(containerd)
    [ -x /usr/sbin/runc ] || [ -x /usr/bin/runc ] || missing+=(runc)
    [ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing+=(busybox-static)
    command -v jq >/dev/null || missing+=(jq)
    if [ ${#missing[@]} -eq 0 ]; then
        return
    fi
    say "installing from Debian: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed: cannot install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed; install them by hand and run $0 start again"
    # The package starts the system's own daemon on some hosts; ours is private, and the
    # system one is left alone.
}

real_runc() {
    for r in /usr/sbin/runc /usr/bin/runc; do
        [ -x "$r" ] && { echo "$r"; return; }
    done
    die "runc not found after installation"
}

# On these machines the capability bounding set lacks some capabilities (CAP_SYS_RESOURCE),
# and dockerd gives a --privileged container every capability the kernel knows, so runc
# refuses to start it. This wrapper, first on dockerd's PATH, removes from the OCI spec (a
# bundle's config.json, or an exec's process file) only the capabilities missing from the
# bounding set, then runs the real runc. Events and inspect stay exactly as on any host.
write_runc_wrapper() {
    mkdir -p "$D/bin"
    cat >"$D/bin/runc" <<EOF
#!/usr/bin/env bash
REAL=$(real_runc)
JQ=$(command -v jq)
EOF
    cat >>"$D/bin/runc" <<'EOF'
names=(CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL
  CAP_SETGID CAP_SETUID CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST
  CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO
  CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE
  CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD CAP_LEASE CAP_AUDIT_WRITE
  CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG CAP_WAKE_ALARM
  CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE)
bnd=$((16#$(awk '/^CapBnd/{print $2}' /proc/self/status)))
missing=()
for i in "${!names[@]}"; do
    (( (bnd >> i) & 1 )) || missing+=("\"${names[$i]}\"")
done
if [ ${#missing[@]} -gt 0 ]; then
    list="[$(IFS=,; echo "${missing[*]}")]"
    filter='map_values(if type == "array" then map(select(. as $c | $m | index($c) | not)) else . end)'
    prev=""
    for a in "$@"; do
        case "$prev" in
            --bundle|-b) f="$a/config.json"; sel='.process.capabilities' ;;
            --process|-p) f="$a"; sel='.capabilities' ;;
            *) f="" ;;
        esac
        if [ -n "$f" ] && [ -f "$f" ]; then
            tmp="$f.vigil.tmp"
            "$JQ" --argjson m "$list" "if $sel then $sel |= ($filter) else . end" "$f" >"$tmp" && mv "$tmp" "$f"
        fi
        prev="$a"
    done
fi
exec "$REAL" "$@"
EOF
    chmod +x "$D/bin/runc"
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && [ -S "$SOCK" ] \
        && docker_cli version >/dev/null 2>&1
}

docker_cli() {
    DOCKER_HOST=$HOST docker "$@"
}

start_dockerd() {
    local driver
    for driver in overlay2 vfs; do
        say "starting a private dockerd (storage driver $driver), socket $SOCK, log $LOG"
        rm -f "$SOCK"
        # setsid: the daemon outlives the shell that started it (a test run).
        PATH="$D/bin:$PATH" setsid /usr/sbin/dockerd \
            --data-root "$D/data" --exec-root "$D/exec" --pidfile "$PIDFILE" \
            -H "$HOST" --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
            --storage-driver "$driver" --userland-proxy=false \
            >>"$LOG" 2>&1 </dev/null &
        local i
        for i in $(seq 1 60); do
            if running; then
                say "dockerd is up (pid $(cat "$PIDFILE"), driver $driver)"
                echo "$driver" >"$D/driver"
                return 0
            fi
            kill -0 $! 2>/dev/null || break
            sleep 0.5
        done
        say "dockerd with $driver did not come up; last log lines:"
        tail -n 5 "$LOG" >&2 || true
        [ -f "$PIDFILE" ] && kill "$(cat "$PIDFILE")" 2>/dev/null || true
        sleep 1
    done
    die "dockerd did not start with overlay2 nor vfs; see $LOG"
}

import_busybox() {
    if docker_cli image inspect "$IMAGE" >/dev/null 2>&1; then
        return
    fi
    local bb
    bb=$(command -v busybox || true)
    [ -n "$bb" ] || die "busybox not found after installation"
    say "importing $IMAGE from $bb"
    local rootfs
    rootfs=$(mktemp -d)
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
    cp "$bb" "$rootfs/bin/busybox"
    local applet
    for applet in sh ls cat echo sleep id true false ps mount env top; do
        ln -s busybox "$rootfs/bin/$applet"
    done
    echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
    echo "root:x:0:" >"$rootfs/etc/group"
    tar -C "$rootfs" -c . | docker_cli import - "$IMAGE" >/dev/null \
        || die "docker import failed"
    rm -rf "$rootfs"
}

# --- containerd -----------------------------------------------------------------------------
# A PRIVATE containerd of its own (root, state, socket under $ROOT/containerd; CRI disabled),
# apart from the one dockerd runs, so that restarting dockerd in the Docker tests never cuts
# the containerd tests short. The busybox image is imported into the `k8s.io` namespace from
# an OCI archive built here (ctr cannot read dockerd's image store).
#
#   tests/engines.sh containerd-start | containerd-stop | containerd-status
C=$ROOT/containerd
C_SOCK=$C/containerd.sock
C_PIDFILE=$C/containerd.pid
C_LOG=$C/containerd.log
C_IMAGE=docker.io/vigil-test/busybox:latest

containerd_running() {
    [ -f "$C_PIDFILE" ] && kill -0 "$(cat "$C_PIDFILE")" 2>/dev/null && [ -S "$C_SOCK" ] \
        && ctr -a "$C_SOCK" version >/dev/null 2>&1
}

start_containerd() {
    mkdir -p "$C/root" "$C/state"
    printf '%s\n' \
        'version = 2' \
        "root = \"$C/root\"" \
        "state = \"$C/state\"" \
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]' \
        '[grpc]' "  address = \"$C_SOCK\"" \
        '[ttrpc]' "  address = \"$C_SOCK.ttrpc\"" \
        '[debug]' '  address = ""' \
        '[metrics]' '  address = ""' >"$C/config.toml"
    say "starting a private containerd, socket $C_SOCK, log $C_LOG"
    rm -f "$C_SOCK"
    setsid containerd --config "$C/config.toml" >>"$C_LOG" 2>&1 </dev/null &
    echo $! >"$C_PIDFILE"
    local i
    for i in $(seq 1 60); do
        if containerd_running; then
            say "containerd is up (pid $(cat "$C_PIDFILE"))"
            return 0
        fi
        kill -0 "$(cat "$C_PIDFILE")" 2>/dev/null || break
        sleep 0.5
    done
    tail -n 5 "$C_LOG" >&2 || true
    die "the private containerd did not start; see $C_LOG"
}

# The snapshotter ctr should use: overlayfs where the kernel mounts it here, else native.
containerd_snapshotter() {
    local t
    t=$(mktemp -d)
    mkdir -p "$t/l" "$t/u" "$t/w" "$t/m"
    if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
        umount "$t/m"
        echo overlayfs
    else
        echo native
    fi
    rm -rf "$t"
}

import_busybox_containerd() {
    local snap
    snap=$(cat "$C/snapshotter")
    if ctr -a "$C_SOCK" -n k8s.io images ls -q | grep -qx "$C_IMAGE"; then
        return
    fi
    local bb arch work rootfs
    bb=$(command -v busybox || true)
    [ -n "$bb" ] || die "busybox not found after installation"
    arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
    work=$(mktemp -d)
    rootfs=$work/rootfs
    mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" \
        "$work/oci/blobs/sha256"
    cp "$bb" "$rootfs/bin/busybox"
    local applet
    for applet in sh ls cat echo sleep id true false ps mount env top; do
        ln -s busybox "$rootfs/bin/$applet"
    done
    echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
    echo "root:x:0:" >"$rootfs/etc/group"
    # An OCI image layout: one uncompressed layer, its config, a manifest, an index.
    local blobs=$work/oci/blobs/sha256 layer lsize cfg csize man msize
    tar -C "$rootfs" -cf "$work/layer.tar" .
    layer=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    lsize=$(stat -c %s "$work/layer.tar")
    mv "$work/layer.tar" "$blobs/$layer"
    printf '{"architecture":"%s","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$arch" "$layer" >"$work/config.json"
    cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
    csize=$(stat -c %s "$work/config.json")
    mv "$work/config.json" "$blobs/$cfg"
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
        "$cfg" "$csize" "$layer" "$lsize" >"$work/manifest.json"
    man=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
    msize=$(stat -c %s "$work/manifest.json")
    mv "$work/manifest.json" "$blobs/$man"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"latest"}}]}' \
        "$man" "$msize" "$arch" "$C_IMAGE" >"$work/oci/index.json"
    tar -C "$work/oci" -cf "$work/busybox-oci.tar" .
    say "importing $C_IMAGE into containerd namespace k8s.io (snapshotter $snap)"
    ctr -a "$C_SOCK" -n k8s.io images import --snapshotter "$snap" "$work/busybox-oci.tar" >&2 \
        || die "ctr images import failed"
    rm -rf "$work"
}

containerd_start() {
    need_root containerd-start
    mkdir -p "$C"
    if containerd_running; then
        say "reusing the private containerd (pid $(cat "$C_PIDFILE")) at $C_SOCK"
    else
        install_missing
        start_containerd
    fi
    [ -s "$C/snapshotter" ] || containerd_snapshotter >"$C/snapshotter"
    import_busybox_containerd
    say "ready: VIGIL_TEST_CONTAINERD_SOCK=$C_SOCK (image $C_IMAGE, snapshotter $(cat "$C/snapshotter"))"
}

containerd_stop() {
    if [ -f "$C_PIDFILE" ] && kill -0 "$(cat "$C_PIDFILE")" 2>/dev/null; then
        local pid
        pid=$(cat "$C_PIDFILE")
        say "stopping the private containerd (pid $pid)"
        kill "$pid"
        for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    else
        say "the private containerd is not running"
    fi
}
# --- end containerd ---------------------------------------------------------------------------

cmd=${1:-start}
case "$cmd" in
    start)
        need_root start
        mkdir -p "$D"
        if running; then
            say "reusing the private dockerd (pid $(cat "$PIDFILE")) at $SOCK"
        else
            install_missing
            command -v docker >/dev/null || die "no docker CLI after installing docker.io"
            write_runc_wrapper
            start_dockerd
        fi
        import_busybox
        say "ready: VIGIL_TEST_DOCKER_HOST=$HOST (image $IMAGE)"
        containerd_start
        ;;
    stop)
        if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
            pid=$(cat "$PIDFILE")
            say "stopping the private dockerd (pid $pid)"
            kill "$pid"
            for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        else
            say "the private dockerd is not running"
        fi
        ;;
    status)
        if running; then say "running: pid $(cat "$PIDFILE"), $HOST"; else say "not running"; exit 1; fi
        ;;
    env)
        echo "VIGIL_TEST_DOCKER_HOST=$HOST"
        echo "VIGIL_TEST_DOCKER_IMAGE=$IMAGE"
        echo "VIGIL_TEST_CONTAINERD_SOCK=$C_SOCK"
        echo "VIGIL_TEST_CONTAINERD_IMAGE=$C_IMAGE"
        ;;
    containerd-start) containerd_start ;;
    containerd-stop) containerd_stop ;;
    containerd-status)
        if containerd_running; then say "containerd running: pid $(cat "$C_PIDFILE"), $C_SOCK"; else say "containerd not running"; exit 1; fi
        ;;
    *)
        die "usage: $0 start|stop|status|env|containerd-start|containerd-stop|containerd-status"
        ;;
esac
