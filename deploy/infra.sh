#!/usr/bin/env bash
# Local services for development and CI, without Docker:
#   RabbitMQ 3.10 (AMQP 127.0.0.1:5672, management 127.0.0.1:15672)
#   FerretDB v1.24.2 over SQLite (MongoDB wire protocol, 127.0.0.1:27017; each update of a
#   document atomic, see deploy/ferretdb/atomic_updates.go)
#   Dovecot 2.3 (IMAP 127.0.0.1:10143, LMTP 127.0.0.1:10024)
#   SMTP submission with AUTH (127.0.0.1:10587), delivering into Dovecot over LMTP
#
# Usage: deploy/infra.sh [start|stop|restart|status|env|tools|rabbitmqctl ARGS...]
#   start    install missing packages, start what is not running, wait until every service
#            answers, print one line per service (the default; a no-op when all run); runs
#            `tools` first
#   stop     stop everything started here (quiet when already stopped)
#   restart  stop, then start
#   status   print what runs; exit status 1 when something is down
#   env      print `export MAILSYNC_...=...` lines:  eval "$(deploy/infra.sh env)"
#   tools    what the deployment checks need, built or fetched once into .infra/:
#            .infra/bin/configcheck (kustomize, kubeconform and compose-go's loader, built
#            from deploy/configcheck with the Go module proxy) and .infra/keda-crds/ (KEDA's
#            CRDs from its pinned Go module); Prometheus' promtool comes with `start`
#   rabbitmqctl ARGS...   rabbitmqctl against this node (e.g. `rabbitmqctl list_queues`)
#
# All data, logs and pid files live in $REPO/.infra/ (git-ignored); delete it for a clean slate.
# Nothing outside the repository is configured (no /etc edits, no systemd); missing Debian
# packages (rabbitmq-server, dovecot-imapd, dovecot-lmtpd, prometheus, chromium and
# chromium-driver for the console's browser tests) are installed with apt-get.
# If MONGODB_URL or MAILSYNC_MONGODB_URL points at another server, FerretDB is not started.
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
INFRA="$REPO/.infra"
LOGS="$INFRA/logs"
RUN="$INFRA/run"
export PATH="$PATH:/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin"

HOST=127.0.0.1
AMQP_PORT=5672
RABBIT_MGMT_PORT=15672
RABBIT_DIST_PORT=25672
RABBIT_NODE=mailsync@localhost
MONGO_PORT=27017
IMAP_PORT=10143
LMTP_PORT=10024
SMTP_PORT=10587

RABBIT_URL="amqp://guest:guest@$HOST:$AMQP_PORT/"
DEFAULT_MONGO_URL="mongodb://$HOST:$MONGO_PORT/"
DOVECOT_TEMPLATE="$REPO/deploy/dovecot/dovecot.conf"
DOVECOT_CONF="$INFRA/dovecot/dovecot.conf"
DOVECOT_PID="$INFRA/dovecot/run/master.pid"
USERS_FILE="$INFRA/dovecot/users"
OAUTH2_TEMPLATE="$REPO/deploy/dovecot/dovecot-oauth2.conf.ext"
OAUTH2_CONF="$INFRA/dovecot/dovecot-oauth2.conf.ext"
OAUTH2_KEYS="$INFRA/dovecot/oauth2-keys"
# The HS256 key that signs local XOAUTH2 access tokens: `<azp>/<alg>/<kid>` under the key dict.
OAUTH2_KEY_FILE="$OAUTH2_KEYS/default/HS256/default"
MAIL_DIR="$INFRA/mail"
CONFIGCHECK_SRC="$REPO/deploy/configcheck"
CONFIGCHECK_BIN="$INFRA/bin/configcheck"
# KEDA's CustomResourceDefinitions (ScaledObject, TriggerAuthentication) validate the
# Kubernetes manifests; they come from the KEDA Go module at this version.
KEDA_MODULE=github.com/kedacore/keda/v2
KEDA_VERSION=v2.20.2
KEDA_CRDS="$INFRA/keda-crds"
FERRET_SRC="$REPO/deploy/ferretdb"
FERRET_BIN="$INFRA/bin/ferretdb"
FERRET_DATA="$INFRA/ferretdb"
FERRET_PID="$RUN/ferretdb.pid"
SMTP_PID="$RUN/smtp.pid"
RABBIT_DIR="$INFRA/rabbitmq"
RABBIT_PID="$RUN/rabbitmq.pid"

# An external MongoDB (e.g. a real MongoDB 7) replaces FerretDB. Our own default URL, as
# exported by `eval "$(deploy/infra.sh env)"`, does not count as external.
EXTERNAL_MONGO_URL="${MAILSYNC_MONGODB_URL:-${MONGODB_URL:-}}"
if [[ "$EXTERNAL_MONGO_URL" == "$DEFAULT_MONGO_URL" || "$EXTERNAL_MONGO_URL" == "${DEFAULT_MONGO_URL%/}" ]]; then
  EXTERNAL_MONGO_URL=""
fi
MONGO_URL="${EXTERNAL_MONGO_URL:-$DEFAULT_MONGO_URL}"

# ---------------------------------------------------------------------------------------------
# helpers

say() { printf 'infra: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

tail_log() { # tail_log NAME FILE...: show the end of a service's log(s) on stderr
  local name=$1 file
  shift
  for file in "$@"; do
    [[ -s "$file" ]] || continue
    printf -- '----- %s: last lines of %s -----\n' "$name" "$file" >&2
    tail -n 40 "$file" >&2
  done
}

pid_of() { head -n 1 "$1" 2>/dev/null | tr -dc '0-9'; }

pid_pattern() { # what the command line of the process in PIDFILE must contain
  case "$1" in
    "$RABBIT_PID") echo "$RABBIT_DIR" ;; # beam.smp ... -home .infra/rabbitmq
    "$FERRET_PID") echo "$FERRET_BIN" ;;
    "$DOVECOT_PID") echo "$DOVECOT_CONF" ;;
    "$SMTP_PID") echo "mailsync_devmail.smtp_server" ;;
  esac
}

pid_alive() { # pid_alive PIDFILE: its process runs, and is ours (pids are reused after a reboot)
  local pid pattern
  pid="$(pid_of "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  pattern="$(pid_pattern "$1")"
  [[ -n "$pattern" && -r "/proc/$pid/cmdline" ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

port_busy() { # port_busy PORT: something accepts TCP connections on 127.0.0.1:PORT
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

ensure_port_free() { # ensure_port_free SERVICE PORT...
  local name=$1 port
  shift
  for port in "$@"; do
    if port_busy "$port"; then
      die "$name: port $HOST:$port is already in use by a process not started by this script" \
        "(find it with: ss -ltnp 'sport = :$port')"
    fi
  done
}

write_if_changed() { # write_if_changed FILE (content on stdin); status 0 when it changed
  local file=$1 tmp
  tmp="$(mktemp "$file.XXXXXX")"
  cat >"$tmp"
  if [[ -f "$file" ]] && cmp -s "$tmp" "$file"; then
    rm -f "$tmp"
    return 1
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$file"
  return 0
}

stop_pidfile() { # stop_pidfile NAME PIDFILE: TERM the process group, KILL after 15 s
  local name=$1 pidfile=$2 pid i
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(pid_of "$pidfile")"
  say "stopping $name (pid $pid)"
  # Started with setsid: the pid is also the process group (uv run + python, for instance).
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in 15 s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

rotate_log() { # rotate_log FILE: keep logs of long-lived .infra folders bounded (at start only)
  if [[ -f "$1" ]] && (($(stat -c %s "$1") > 50 * 1024 * 1024)); then
    mv -f "$1" "$1.1"
  fi
}

spawn() { # spawn PIDFILE LOGFILE CMD...: run CMD detached (own session), append output to LOGFILE
  local pidfile=$1 logfile=$2
  shift 2
  rotate_log "$logfile"
  printf '\n===== %s start: %s =====\n' "$(date '+%F %T')" "$*" >>"$logfile"
  # 9>&-: daemons must not inherit the start/stop lock (see with_lock).
  nohup setsid "$@" </dev/null >>"$logfile" 2>&1 9>&- &
  echo $! >"$pidfile"
}

# Probe helper in the workspace venv: real protocol answers, not just open ports.
probe() { (cd "$REPO" && uv run --no-sync --quiet python -m mailsync_devmail.probe "$@"); }

have_bin() { command -v "$1" >/dev/null 2>&1; }

rabbit_bindir() {
  if [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    # Debian's /usr/sbin wrappers switch to the `rabbitmq` user and drop our environment:
    # call the real scripts so the node runs from .infra with our settings.
    echo /usr/lib/rabbitmq/bin
  elif have_bin rabbitmq-server; then
    dirname "$(command -v rabbitmq-server)"
  fi
}

# ---------------------------------------------------------------------------------------------
# packages and toolchains

ensure_packages() {
  local -a missing=()
  [[ -n "$(rabbit_bindir)" ]] || missing+=(rabbitmq-server)
  have_bin dovecot && have_bin doveadm || missing+=(dovecot-core)
  [[ -x /usr/lib/dovecot/imap ]] || missing+=(dovecot-imapd)
  [[ -x /usr/lib/dovecot/lmtp ]] || missing+=(dovecot-lmtpd)
  have_bin prometheus && have_bin promtool || missing+=(prometheus) # metrics tests and rules
  have_bin chromium || missing+=(chromium)                            # the console's browser tests
  have_bin chromedriver || missing+=(chromium-driver)
  have_bin mbsync || missing+=(isync)                                 # the backfill benchmark's
  have_bin offlineimap || missing+=(offlineimap)                      # mail-sync baselines
  ((${#missing[@]})) || return 0

  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    have_bin sudo || die "missing packages (${missing[*]}) and not root: install them first"
    sudo="sudo"
  fi
  say "installing ${missing[*]} with apt-get (once; takes a minute)"
  # Keep the packages' own services (system RabbitMQ on 5672, system Dovecot) from being
  # started by the postinst scripts, unless the machine already has a policy.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 0755 "$policy"
    own_policy=1
  fi
  local rc=0
  {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install \
        -y -qq --no-install-recommends "${missing[@]}"
  } >"$LOGS/apt.log" 2>&1 || rc=$?
  ((own_policy)) && $sudo rm -f "$policy"
  if ((rc)); then
    tail_log apt "$LOGS/apt.log"
    die "apt-get install ${missing[*]} failed"
  fi
}

ensure_python() {
  have_bin uv || die "uv is not installed (https://docs.astral.sh/uv/)"
  if [[ ! -x "$REPO/.venv/bin/python" ]] ||
    ! "$REPO/.venv/bin/python" -c 'import mailsync_devmail, aiosmtpd, pymongo' 2>/dev/null; then
    say "syncing the Python workspace (uv sync --all-packages)"
    (cd "$REPO" && uv sync --all-packages --quiet) || die "uv sync failed"
  fi
}

# ---------------------------------------------------------------------------------------------
# RabbitMQ: its own node, mnesia, logs, config and Erlang cookie under .infra/rabbitmq

rabbit() { # rabbit SCRIPT ARGS...: run a RabbitMQ script with the .infra environment
  local bindir script=$1
  shift
  bindir="$(rabbit_bindir)"
  [[ -n "$bindir" ]] || return 127
  (
    # HOME holds the Erlang cookie shared by the node and rabbitmqctl.
    export HOME="$RABBIT_DIR"
    export RABBITMQ_NODENAME="$RABBIT_NODE"
    export RABBITMQ_USE_LONGNAME=false
    export RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia"
    export RABBITMQ_LOG_BASE="$LOGS/rabbitmq"
    export RABBITMQ_PID_FILE="$RABBIT_PID"
    export RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.conf"
    export RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_DIR/advanced.config"
    export RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
    export RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT"
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    export ERL_EPMD_ADDRESS="$HOST"
    cd "$RABBIT_DIR"
    exec "$bindir/$script" "$@" 9>&-
  )
}

rabbit_prepare() {
  mkdir -p "$RABBIT_DIR/mnesia" "$LOGS/rabbitmq"
  if [[ ! -s "$RABBIT_DIR/.erlang.cookie" ]]; then
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$RABBIT_DIR/.erlang.cookie")
  fi
  chmod 0400 "$RABBIT_DIR/.erlang.cookie"
  write_if_changed "$RABBIT_DIR/rabbitmq.conf" <<EOF || true
# Generated by deploy/infra.sh
listeners.tcp.default = $HOST:$AMQP_PORT
management.tcp.ip = $HOST
management.tcp.port = $RABBIT_MGMT_PORT
loopback_users.guest = true
log.console = false
log.file.level = info
EOF
  write_if_changed "$RABBIT_DIR/enabled_plugins" <<'EOF' || true
[rabbitmq_consistent_hash_exchange,rabbitmq_management].
EOF
}

rabbit_up() {
  pid_alive "$RABBIT_PID" &&
    probe --quiet "amqp=$HOST:$AMQP_PORT" "http=http://$HOST:$RABBIT_MGMT_PORT/"
}

rabbit_launch() {
  rabbit_prepare
  if pid_alive "$RABBIT_PID"; then
    return 0 # booting (or hung): rabbit_wait decides
  fi
  ensure_port_free rabbitmq "$AMQP_PORT" "$RABBIT_MGMT_PORT" "$RABBIT_DIST_PORT"
  say "starting rabbitmq (node $RABBIT_NODE, about 10 s)"
  rm -f "$RABBIT_PID"
  printf '\n===== %s start =====\n' "$(date '+%F %T')" >>"$LOGS/rabbitmq-startup.log"
  rabbit rabbitmq-server -detached >>"$LOGS/rabbitmq-startup.log" 2>&1 || {
    rabbit_fail "rabbitmq-server -detached failed"
  }
}

rabbit_fail() {
  say "rabbitmq: $1"
  tail_log rabbitmq "$LOGS/rabbitmq-startup.log" "$LOGS/rabbitmq/$RABBIT_NODE.log"
  exit 1
}

rabbit_wait() {
  # The pid file appears once the VM runs; await_startup then waits for the boot to finish.
  local i
  for ((i = 0; i < 300; i++)); do
    [[ -s "$RABBIT_PID" ]] && break
    sleep 0.2
  done
  [[ -s "$RABBIT_PID" ]] || rabbit_fail "no pid file after 60 s"
  rabbit rabbitmqctl -n "$RABBIT_NODE" -q await_startup --timeout 120 \
    >>"$LOGS/rabbitmq-startup.log" 2>&1 || rabbit_fail "the node did not finish booting"
  probe --wait 30 "amqp=$HOST:$AMQP_PORT" "http=http://$HOST:$RABBIT_MGMT_PORT/" ||
    rabbit_fail "AMQP or management port does not answer"
}

rabbit_stop() {
  pid_alive "$RABBIT_PID" || {
    rm -f "$RABBIT_PID"
    return 0
  }
  say "stopping rabbitmq"
  # `stop PIDFILE` returns once the VM has exited.
  if ! rabbit rabbitmqctl -n "$RABBIT_NODE" -q stop "$RABBIT_PID" >>"$LOGS/rabbitmq-startup.log" 2>&1; then
    stop_pidfile rabbitmq "$RABBIT_PID"
  fi
  rm -f "$RABBIT_PID"
  # epmd was started by our node; stop it when no other Erlang node uses it.
  if have_bin epmd && ! ERL_EPMD_ADDRESS="$HOST" epmd -names 2>/dev/null | grep -q '^name '; then
    ERL_EPMD_ADDRESS="$HOST" epmd -kill >/dev/null 2>&1 || true
  fi
}

# ---------------------------------------------------------------------------------------------
# FerretDB (embedded, SQLite, behind the atomic-updates relay) built from deploy/ferretdb

go_sources_newer() { # go_sources_newer SRC BIN: a Go source, go.mod, go.sum or patch changed since BIN was built
  local source
  for source in "$1"/*.go "$1/go.mod" "$1/go.sum" "$1"/patches/*.patch; do
    [[ "$source" -nt "$2" ]] && return 0
  done
  return 1
}

go_build() { # go_build NAME SRC BIN [PATCHED_MODULE]: build once; status 1 when BIN was up to date
  local name=$1 src=$2 bin=$3 patched_module=${4:-} go modfile
  if [[ -x "$bin" ]] && ! go_sources_newer "$src" "$bin"; then
    return 1
  fi
  go="$(command -v go || true)"
  [[ -n "$go" ]] || die "$name: Go >= 1.26 is needed to build $src"
  say "building $name from ${src#"$REPO/"} (first build downloads modules and compiles: a few minutes)"
  mkdir -p "$(dirname "$bin")" "$LOGS"
  modfile="$src/go.mod"
  if [[ -n "$patched_module" ]]; then
    modfile="$(go_patched_modfile "$go" "$name" "$src" "$patched_module")" || exit 1
  fi
  if ! (cd "$src" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    "$go" build -trimpath -modfile="$modfile" -o "$bin.tmp" .) >"$LOGS/$name-build.log" 2>&1; then
    rm -f "$bin.tmp"
    tail_log "$name-build" "$LOGS/$name-build.log"
    die "$name: go build failed"
  fi
  mv -f "$bin.tmp" "$bin"
  return 0
}

# go_patched_modfile GO NAME SRC MODULE: copies MODULE (at the version SRC's go.mod requires),
# applies SRC/patches/*.patch to the copy and prints a go.mod that builds SRC against it
go_patched_modfile() {
  local go=$1 name=$2 src=$3 module=$4 version dir patch
  local build="$INFRA/build/$name"
  version="$(cd "$src" && "$go" list -m -f '{{.Version}}' "$module")" ||
    die "$name: $module is not required by ${src#"$REPO/"}/go.mod"
  dir="$(cd "$src" && "$go" mod download -json "$module@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir" ]] || die "$name: could not download $module@$version"
  rm -rf "$build"
  mkdir -p "$build"
  cp -r "$dir" "$build/module"
  chmod -R u+w "$build/module"
  for patch in "$src"/patches/*.patch; do
    # The ceiling keeps git from treating the copy as part of this repository.
    GIT_CEILING_DIRECTORIES="$build" git -C "$build/module" apply -p1 "$patch" ||
      die "$name: ${patch#"$REPO/"} does not apply to $module@$version"
  done
  cp "$src/go.mod" "$build/go.mod"
  cp "$src/go.sum" "$build/go.sum"
  (cd "$src" && "$go" mod edit -modfile="$build/go.mod" -replace "$module=$build/module") ||
    die "$name: could not point $module at its patched copy"
  echo "$build/go.mod"
}

ferret_build() { go_build ferretdb "$FERRET_SRC" "$FERRET_BIN" github.com/FerretDB/FerretDB; }

ferret_up() {
  pid_alive "$FERRET_PID" && probe --quiet "mongo=$DEFAULT_MONGO_URL"
}

ferret_launch() {
  if pid_alive "$FERRET_PID"; then
    return 0
  fi
  ensure_port_free ferretdb "$MONGO_PORT"
  mkdir -p "$FERRET_DATA"
  say "starting ferretdb"
  spawn "$FERRET_PID" "$LOGS/ferretdb.log" "$FERRET_BIN" -listen "$HOST:$MONGO_PORT" -data "$FERRET_DATA"
}

ferret_wait() {
  if ! probe --wait 60 --pid "$(pid_of "$FERRET_PID")" "mongo=$DEFAULT_MONGO_URL" || ! pid_alive "$FERRET_PID"; then
    say "ferretdb does not answer on $DEFAULT_MONGO_URL"
    tail_log ferretdb "$LOGS/ferretdb.log"
    exit 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Dovecot (IMAP + LMTP) with the project's config, rendered into .infra/dovecot

# Every account's imap process runs as the `mail` user, and each IDLE takes one inotify
# instance of that user: the kernel's default of 128 would leave IDLE on a thousand mailboxes
# falling back to polling (mail seen up to 30 s late). Raised where the kernel lets us.
INOTIFY_INSTANCES=8192

dovecot_limits() {
  local current
  current="$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 0)"
  if ((current < INOTIFY_INSTANCES)); then
    if ! { echo "$INOTIFY_INSTANCES" >/proc/sys/fs/inotify/max_user_instances; } 2>/dev/null; then
      say "warning: fs.inotify.max_user_instances is $current; IDLE beyond that many connections is polled"
    fi
  fi
}

dovecot_prepare() {
  [[ -f "$DOVECOT_TEMPLATE" ]] || die "missing $DOVECOT_TEMPLATE"
  dovecot_limits
  mkdir -p "$INFRA/dovecot/run" "$INFRA/dovecot/state" "$MAIL_DIR"
  # Mail is stored as the `mail` user (uid 8): Dovecot refuses uid 0.
  chown mail:mail "$MAIL_DIR"
  chmod 0750 "$MAIL_DIR"
  if [[ ! -e "$USERS_FILE" ]]; then
    : >"$USERS_FILE"
  fi
  # Read by Dovecot's auth process (user `dovecot`); plaintext throwaway passwords.
  chmod 0640 "$USERS_FILE"
  chgrp dovecot "$USERS_FILE" 2>/dev/null || chmod 0644 "$USERS_FILE"
  # Access tokens for XOAUTH2 logins are JWTs signed with a key made here once (base64).
  mkdir -p "$(dirname "$OAUTH2_KEY_FILE")"
  if [[ ! -s "$OAUTH2_KEY_FILE" ]]; then
    head -c 32 /dev/urandom | base64 -w0 >"$OAUTH2_KEY_FILE"
  fi
  if chgrp -R dovecot "$OAUTH2_KEYS" 2>/dev/null; then
    chmod -R u=rwX,g=rX,o= "$OAUTH2_KEYS"
  else
    chmod -R a+rX "$OAUTH2_KEYS"
  fi
  if render_infra_template "$DOVECOT_TEMPLATE" "$DOVECOT_CONF"; then
    DOVECOT_CONF_CHANGED=1
  fi
  if render_infra_template "$OAUTH2_TEMPLATE" "$OAUTH2_CONF"; then
    DOVECOT_CONF_CHANGED=1
  fi
}

render_infra_template() { # render_infra_template TEMPLATE DEST: @INFRA@ replaced; 0 when changed
  local escaped
  escaped="$(printf '%s' "$INFRA" | sed 's/[&|\\]/\\&/g')"
  sed "s|@INFRA@|$escaped|g" "$1" | write_if_changed "$2"
}

dovecot_up() {
  pid_alive "$DOVECOT_PID" && probe --quiet "imap=$HOST:$IMAP_PORT" "lmtp=$HOST:$LMTP_PORT"
}

dovecot_launch() {
  dovecot_prepare
  if pid_alive "$DOVECOT_PID"; then
    if ((${DOVECOT_CONF_CHANGED:-0})); then
      say "dovecot config changed: reloading"
      doveadm -c "$DOVECOT_CONF" reload >>"$LOGS/dovecot.log" 2>&1 || true
    fi
    return 0
  fi
  ensure_port_free dovecot "$IMAP_PORT" "$LMTP_PORT"
  rm -f "$DOVECOT_PID" # stale (Dovecot refuses to start if that pid now belongs to another process)
  say "starting dovecot"
  rotate_log "$LOGS/dovecot.log"
  # Checks the config first; the master then forks into the background.
  if ! dovecot -c "$DOVECOT_CONF" >>"$LOGS/dovecot.log" 2>&1 9>&-; then
    say "dovecot refused to start"
    tail_log dovecot "$LOGS/dovecot.log"
    exit 1
  fi
}

dovecot_wait() {
  local i
  for ((i = 0; i < 50; i++)); do # the master writes its pid file right after forking
    [[ -s "$DOVECOT_PID" ]] && break
    sleep 0.1
  done
  if ! probe --wait 30 --pid "$(pid_of "$DOVECOT_PID")" "imap=$HOST:$IMAP_PORT" "lmtp=$HOST:$LMTP_PORT" ||
    ! pid_alive "$DOVECOT_PID"; then
    say "dovecot does not answer on IMAP $IMAP_PORT / LMTP $LMTP_PORT"
    tail_log dovecot "$LOGS/dovecot.log"
    exit 1
  fi
}

dovecot_stop() {
  pid_alive "$DOVECOT_PID" || return 0
  say "stopping dovecot"
  local pid i
  pid="$(pid_of "$DOVECOT_PID")"
  doveadm -c "$DOVECOT_CONF" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# SMTP submission (mailsync_devmail.smtp_server, aiosmtpd) delivering over LMTP

smtp_up() {
  pid_alive "$SMTP_PID" && probe --quiet "smtp=$HOST:$SMTP_PORT"
}

smtp_launch() {
  if pid_alive "$SMTP_PID"; then
    return 0
  fi
  ensure_port_free smtp "$SMTP_PORT"
  say "starting smtp submission server"
  (cd "$REPO" && spawn "$SMTP_PID" "$LOGS/smtp.log" \
    uv run --no-sync python -m mailsync_devmail.smtp_server \
    --listen "$HOST:$SMTP_PORT" --lmtp "$HOST:$LMTP_PORT" --users "$USERS_FILE")
}

smtp_wait() {
  if ! probe --wait 30 --pid "$(pid_of "$SMTP_PID")" "smtp=$HOST:$SMTP_PORT" || ! pid_alive "$SMTP_PID"; then
    say "smtp server does not answer on $HOST:$SMTP_PORT"
    tail_log smtp "$LOGS/smtp.log"
    exit 1
  fi
}

# ---------------------------------------------------------------------------------------------
# Deployment checks: configcheck and KEDA's CRDs

keda_crds() {
  [[ "$(cat "$KEDA_CRDS/VERSION" 2>/dev/null)" == "$KEDA_VERSION" ]] && return 0
  local go dir
  go="$(command -v go || true)"
  [[ -n "$go" ]] || die "keda: Go is needed to fetch $KEDA_MODULE@$KEDA_VERSION"
  say "fetching KEDA's CRDs ($KEDA_MODULE@$KEDA_VERSION from the Go module proxy)"
  # Outside any module: the download is checked against the Go checksum database.
  dir="$(cd "$INFRA" && GOFLAGS=-mod=mod "$go" mod download -json "$KEDA_MODULE@$KEDA_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir/config/crd/bases" ]] || die "keda: no config/crd/bases in $KEDA_MODULE@$KEDA_VERSION"
  rm -rf "$KEDA_CRDS"
  mkdir -p "$KEDA_CRDS"
  cp "$dir"/config/crd/bases/*.yaml "$KEDA_CRDS/"
  chmod u+w "$KEDA_CRDS"/*.yaml
  echo "$KEDA_VERSION" >"$KEDA_CRDS/VERSION"
}

cmd_tools() {
  mkdir -p "$INFRA" "$LOGS"
  go_build configcheck "$CONFIGCHECK_SRC" "$CONFIGCHECK_BIN" || true
  keda_crds
}

# ---------------------------------------------------------------------------------------------
# commands

service_lines() {
  printf '%-9s %s  (management http://%s:%s/, node %s)\n' rabbitmq "$RABBIT_URL" "$HOST" "$RABBIT_MGMT_PORT" "$RABBIT_NODE"
  if [[ -n "$EXTERNAL_MONGO_URL" ]]; then
    printf '%-9s %s  (external, from the environment)\n' mongodb "$MONGO_URL"
  else
    printf '%-9s %s  (FerretDB over SQLite in .infra/ferretdb)\n' mongodb "$MONGO_URL"
  fi
  printf '%-9s imap://%s:%s  (Dovecot; LMTP %s:%s; config %s)\n' imap "$HOST" "$IMAP_PORT" "$HOST" "$LMTP_PORT" "$DOVECOT_CONF"
  printf '%-9s smtp://%s:%s  (AUTH PLAIN/LOGIN required; accounts %s)\n' smtp "$HOST" "$SMTP_PORT" "$USERS_FILE"
}

with_lock() { # serialize start/stop of concurrent callers (parallel test sessions, make -j)
  # Every daemon is started with 9>&- so that it does not inherit (and hold) this lock.
  mkdir -p "$INFRA" "$LOGS" "$RUN"
  exec 9>"$RUN/infra.lock"
  if ! flock -w 1200 9; then
    die "another deploy/infra.sh has held $RUN/infra.lock for 20 minutes (holders: $(fuser "$RUN/infra.lock" 2>&1 | tr -s ' '))"
  fi
}

cmd_start() {
  with_lock
  ensure_python
  cmd_tools
  ensure_packages # also what the tests alone need (chromium), when the services run already
  local -a waiting=()
  if ! rabbit_up; then
    ensure_packages
    rabbit_launch
    waiting+=(rabbit)
  fi
  if [[ -z "$EXTERNAL_MONGO_URL" ]]; then
    # Rebuilding is needed when main.go/go.mod/go.sum changed; a running old binary restarts.
    if ferret_build && pid_alive "$FERRET_PID"; then
      stop_pidfile ferretdb "$FERRET_PID"
    fi
    if ! ferret_up; then
      ferret_launch
      waiting+=(ferret)
    fi
  fi
  if ! dovecot_up; then
    ensure_packages
    dovecot_launch
    waiting+=(dovecot)
  else
    dovecot_prepare # keep the rendered config in step with the template
    if ((${DOVECOT_CONF_CHANGED:-0})); then
      say "dovecot config changed: reloading"
      doveadm -c "$DOVECOT_CONF" reload >>"$LOGS/dovecot.log" 2>&1 || true
    fi
  fi
  if ! smtp_up; then
    smtp_launch
    waiting+=(smtp)
  fi
  local service
  for service in "${waiting[@]}"; do
    "${service}_wait"
  done
  if [[ -n "$EXTERNAL_MONGO_URL" ]]; then
    probe --wait 10 "mongo=$EXTERNAL_MONGO_URL" || die "the MongoDB at MONGODB_URL does not answer"
  fi
  service_lines
}

cmd_stop() {
  with_lock
  if [[ -s "$SMTP_PID" ]]; then stop_pidfile smtp "$SMTP_PID"; fi
  dovecot_stop
  if [[ -s "$FERRET_PID" ]]; then stop_pidfile ferretdb "$FERRET_PID"; fi
  rabbit_stop
}

status_line() { # status_line NAME URL CHECK...: one line; sets `down` when CHECK fails
  local name=$1 url=$2 state=running
  shift 2
  if ! "$@"; then
    state=stopped
    down=1
  fi
  printf '%-9s %-8s %s\n' "$name" "$state" "$url"
}

cmd_status() {
  local down=0
  if [[ ! -x "$REPO/.venv/bin/python" ]]; then
    say "no Python workspace (.venv); run: uv sync --all-packages"
    return 1
  fi
  status_line rabbitmq "$RABBIT_URL" rabbit_up
  if [[ -n "$EXTERNAL_MONGO_URL" ]]; then
    status_line mongodb "$MONGO_URL (external)" probe --quiet "mongo=$EXTERNAL_MONGO_URL"
  else
    status_line mongodb "$MONGO_URL" ferret_up
  fi
  status_line imap "imap://$HOST:$IMAP_PORT (lmtp $HOST:$LMTP_PORT)" dovecot_up
  status_line smtp "smtp://$HOST:$SMTP_PORT" smtp_up
  return "$down"
}

cmd_env() {
  local var value
  for var in \
    "MAILSYNC_RABBITMQ_URL=$RABBIT_URL" \
    "MAILSYNC_MONGODB_URL=$MONGO_URL" \
    "MAILSYNC_FERRETDB_DATA=$FERRET_DATA" \
    "MAILSYNC_IMAP_HOST=$HOST" \
    "MAILSYNC_IMAP_PORT=$IMAP_PORT" \
    "MAILSYNC_LMTP_PORT=$LMTP_PORT" \
    "MAILSYNC_SMTP_HOST=$HOST" \
    "MAILSYNC_SMTP_PORT=$SMTP_PORT" \
    "MAILSYNC_DOVECOT_CONFIG=$DOVECOT_CONF" \
    "MAILSYNC_DOVECOT_OAUTH2_KEY=$OAUTH2_KEY_FILE" \
    "MAILSYNC_MAIL_USERS_FILE=$USERS_FILE"; do
    value="${var#*=}"
    if [[ ! "$value" =~ ^[A-Za-z0-9_./:@%+,=-]*$ ]]; then
      value="'${value//\'/\'\\\'\'}'" # POSIX single quotes: works with sh, bash and zsh
    fi
    printf 'export %s=%s\n' "${var%%=*}" "$value"
  done
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart)
    cmd_stop
    exec 9>&-
    cmd_start
    ;;
  status) cmd_status ;;
  env) cmd_env ;;
  tools)
    with_lock
    cmd_tools
    ;;
  rabbitmqctl)
    # rabbitmqctl against our node, with its cookie: deploy/infra.sh rabbitmqctl list_queues
    shift
    rabbit rabbitmqctl -n "$RABBIT_NODE" "$@"
    ;;
  -h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" ;;
  *)
    echo "usage: $0 [start|stop|restart|status|env|tools|rabbitmqctl ARGS...]" >&2
    exit 2
    ;;
esac
