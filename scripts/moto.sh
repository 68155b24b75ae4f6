# Sourced by the test and bench scripts: installs moto into a venv under
# target/ (once), starts it on a free loopback port, exports
# IBYOK_TEST_AWS_ENDPOINT, and stops it when the calling script exits.
# IBYOK_MOTO_HOST=ADDR listens on ADDR instead of 127.0.0.1 (scripts/sam-local:
# the Docker bridge's address, which the functions' containers reach).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/moto-venv"
if [ ! -x "$venv/bin/moto_server" ]; then
    echo "==> installing moto[server] into $venv (once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6' 'waitress>=3,<4'
fi
host="${IBYOK_MOTO_HOST:-127.0.0.1}"
port="$(python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$host")"
moto_log="$root/target/moto.log"
# scripts/moto_server.py: moto's app with DynamoDB requests serialised (see
# there why). IBYOK_MOTO_KEEPALIVE=1 serves it with keep-alive connections
# (waitress), for latency work: the stock server closes every connection.
options=()
if [ "${IBYOK_MOTO_KEEPALIVE:-0}" = 1 ]; then options=(--keepalive); fi
# IBYOK_MOTO_CAPACITY=1: the capacity model (scripts/capacity.py) at /__capacity.
if [ "${IBYOK_MOTO_CAPACITY:-0}" = 1 ]; then options+=(--capacity); fi
if [ "$host" != 127.0.0.1 ]; then options+=(--host "$host"); fi
"$venv/bin/python" "$root/scripts/moto_server.py" "$port" "${options[@]}" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection((sys.argv[2], int(sys.argv[1])), 0.2)" "$port" "$host" 2>/dev/null; then break; fi
    if ! kill -0 $moto_pid 2>/dev/null; then cat "$moto_log"; echo "moto failed to start" >&2; exit 1; fi
    sleep 0.2
done
export IBYOK_TEST_AWS_ENDPOINT="http://$host:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
echo "==> moto on $IBYOK_TEST_AWS_ENDPOINT"
