# Sourced by the test and bench scripts: installs moto into a venv under
# target/ (once), starts it on a free loopback port, exports
# IBYOK_TEST_AWS_ENDPOINT, and stops it when the calling script exits.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/moto-venv"
if [ ! -x "$venv/bin/moto_server" ]; then
    echo "==> installing moto[server] into $venv (once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6' 'waitress>=3,<4'
fi
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
moto_log="$root/target/moto.log"
# scripts/moto_server.py: moto's app with DynamoDB requests serialised (see
# there why). IBYOK_MOTO_KEEPALIVE=1 serves it with keep-alive connections
# (waitress), for latency work: the stock server closes every connection.
keepalive=()
if [ "${IBYOK_MOTO_KEEPALIVE:-0}" = 1 ]; then keepalive=(--keepalive); fi
# IBYOK_MOTO_CAPACITY=1: the capacity model (scripts/capacity.py) at /__capacity.
if [ "${IBYOK_MOTO_CAPACITY:-0}" = 1 ]; then keepalive+=(--capacity); fi
"$venv/bin/python" "$root/scripts/moto_server.py" "$port" "${keepalive[@]}" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$port" 2>/dev/null; then break; fi
    if ! kill -0 $moto_pid 2>/dev/null; then cat "$moto_log"; echo "moto failed to start" >&2; exit 1; fi
    sleep 0.2
done
export IBYOK_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
echo "==> moto on $IBYOK_TEST_AWS_ENDPOINT"
