#!/usr/bin/env bash
# Tests/Integration/security/run.sh — nobody without the cluster's
# credentials gets in, every refusal is counted in the metrics, and a flood
# of them is logged once per kind (not once per attempt). Real processes on
# 127.0.0.1: an arbiter and a primary-vmm (its logging channel listening,
# waiting for a backup), both with --metrics.
#  1. 25 TLS clients (openssl s_client) with no certificate, 25 with a
#     certificate of another cluster's CA, 25 with an expired certificate
#     signed by this cluster's CA, 25 that do not speak TLS: against the
#     arbiter and against the primary's logging channel. Each kind counted
#     exactly in lockstep_arbiter_refusals_total{reason} and in the primary's
#     lockstep_connections_refused_total, and logged once per kind.
#  2. an operator certificate test-and-sets at the arbiter (a real TLS
#     client speaking the arbiter protocol): refused with an error, the
#     record unchanged, counted as reason="operator", logged once for 10.
#  3. the nodes still serve: a node certificate of this cluster gets in (the
#     arbiter answers a query; `lockstep status` works).
# Forged and replayed heartbeats are the failover test's (section 4); a
# hostile guest is XCTest's MisbehavingGuestTests. Prints "N passed, M
# failed"; KEEP=1 keeps the work dir.
set -u
cd "$(dirname "$0")/../../.."
bash scripts/install-deps.sh openssl curl python3 >/dev/null || { echo "cannot install openssl curl python3"; exit 1; }
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q cryptography >/dev/null 2>&1 ||
  { echo "cannot install the python3 cryptography package (pip install cryptography)"; exit 1; }
make -s -C Guest all >/dev/null || { echo "guest build failed"; exit 1; }
BIN=${BIN:-.build/debug}
for tool in primary-vmm arbiter lockstep; do [ -x "$BIN/$tool" ] || BIN=.build/release; done
GUEST=Guest/build/kvstore.elf
work=$(mktemp -d /tmp/lockstep-security-test.XXXXXX)
. Tests/Integration/lib/cluster.sh

certs=$work/certs other=$work/other
"$BIN/lockstep" certs init --dir "$certs" --vmms node-a,node-b --arbiter arbiter --operators op >/dev/null &&
  "$BIN/lockstep" certs init --dir "$other" --vmms node-a --arbiter arbiter --operators op >/dev/null
check "two clusters' certificates (lockstep certs init)" $? ""
# An expired certificate for node-b, signed by this cluster's CA (valid for a
# day, two years ago): everything right but the dates.
python3 - "$certs" "$work/expired" <<'PY' >"$work/expired.out" 2>&1
import datetime, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
certs, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
ca = x509.load_pem_x509_certificate(open(f"{certs}/ca/ca.pem", "rb").read())
ca_key = serialization.load_pem_private_key(open(f"{certs}/ca/ca-key.pem", "rb").read(), None)
key = ec.generate_private_key(ec.SECP256R1())
start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=730)
name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lockstep"),
                  x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "lockstep-vmm"),
                  x509.NameAttribute(NameOID.COMMON_NAME, "node-b")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("node-b")]), False)
        .sign(ca_key, hashes.SHA256()))
open(f"{out}/cert.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(f"{out}/key.pem", "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
PY
check "an expired node certificate signed by the cluster CA (python3 cryptography)" $? "$(tail -3 "$work/expired.out")"

arb=$(port) repa=$(port) svc=$(port) metarb=$(port) meta=$(port)
spawn arbiter "$work/arbiter.out" "$BIN/arbiter" --listen "127.0.0.1:$arb" --state-dir "$work/state" \
  --tls-dir "$certs/arbiter" --metrics "127.0.0.1:$metarb"
wait_for "$work/arbiter.out" "listening on" 30
spawn primary "$work/primary.out" "$BIN/primary-vmm" --vm kv --guest "$GUEST" --memory 64M \
  --serve "127.0.0.1:$svc" --replication "127.0.0.1:$repa" --tls-dir "$certs/node-a" \
  --arbiter "127.0.0.1:$arb" --metrics "127.0.0.1:$meta"
wait_for "$work/primary.out" "waiting for a backup" 60
check "arbiter and primary up (the primary waits for a backup on 127.0.0.1:$repa)" $? \
  "$(tail_of "$work/arbiter.out") $(tail_of "$work/primary.out")"

metrics() { curl -s --max-time 3 "http://127.0.0.1:$1/metrics"; }
metric() { metrics "$1" | awk -v name="$2" '$1 == name { print $2 }'; }
# attempt KIND PORT: one connection of that kind (a bounded openssl run)
attempt() {
  case $1 in
    no-certificate) timeout 5 openssl s_client -connect "127.0.0.1:$2" -CAfile "$certs/ca/ca.pem" -quiet \
      </dev/null >/dev/null 2>&1 ;;
    untrusted) timeout 5 openssl s_client -connect "127.0.0.1:$2" -CAfile "$certs/ca/ca.pem" -quiet \
      -cert "$other/node-a/cert.pem" -key "$other/node-a/key.pem" </dev/null >/dev/null 2>&1 ;;
    expired) timeout 5 openssl s_client -connect "127.0.0.1:$2" -CAfile "$certs/ca/ca.pem" -quiet \
      -cert "$work/expired/cert.pem" -key "$work/expired/key.pem" </dev/null >/dev/null 2>&1 ;;
    handshake) timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3" \
      >/dev/null 2>&1 ;;
  esac
  return 0
}
N=25
echo "# 1. $N connections of each kind to the arbiter and to the logging channel"
for kind in no-certificate untrusted expired handshake; do
  for _ in $(seq $N); do attempt "$kind" "$arb"; attempt "$kind" "$repa"; done
  got=""
  for _ in $(seq 50); do
    got=$(metric "$metarb" "lockstep_arbiter_refusals_total{reason=\"$kind\"}")
    [ "$got" = "$N" ] && break; sleep 0.1
  done
  [ "$got" = "$N" ]
  check "arbiter: lockstep_arbiter_refusals_total{reason=\"$kind\"} = $N" $? "got '$got'"
  logged=$(grep -ac "refused ($kind)" "$work/arbiter.out")
  [ "$logged" = 1 ]
  check "arbiter: $N refusals of kind $kind logged once" $? "$logged lines: $(grep -a "refused ($kind)" "$work/arbiter.out" | head -3 | cut -c1-200)"
  logged=$(grep -ac "refused ($kind)" "$work/primary.out")
  [ "$logged" = 1 ]
  check "primary: $N refusals of kind $kind logged once" $? "$logged lines: $(grep -a "refused" "$work/primary.out" | tail -3 | cut -c1-200)"
done
expected=$((4 * N)) got=""
for _ in $(seq 50); do got=$(metric "$meta" lockstep_connections_refused_total); [ "$got" = "$expected" ] && break; sleep 0.1; done
[ "$got" = "$expected" ]
check "primary: lockstep_connections_refused_total = $expected" $? "got '$got'"
kill -0 "$arbiter" 2>/dev/null && kill -0 "$primary" 2>/dev/null
check "both still running" $? ""

echo "# 2. an operator certificate test-and-sets at the arbiter"
# A real TLS client (python3 ssl) speaking the arbiter protocol
# (docs/arbiter.md): a query, then testAndSet of kv in the operator's name.
cat >"$work/tas.py" <<'PY'
import socket, ssl, struct, sys
port, certs, who, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
def string(s):
    b = s.encode(); return struct.pack("<H", len(b)) + b
def frame(kind, body):
    head = struct.pack("<BBH", 1, kind, 0)
    return struct.pack("<I", len(body)) + head + body + struct.pack("<I", crc32c(head + body))
def answer(sock):
    data = b""
    while len(data) < 8 or len(data) < 8 + struct.unpack("<I", data[:4])[0] + 4:
        chunk = sock.recv(65536)
        if not chunk: break
        data += chunk
    return data[5], data[8:8 + struct.unpack("<I", data[:4])[0]]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.load_verify_locations(f"{certs}/{who}/ca.pem")
context.load_cert_chain(f"{certs}/{who}/cert.pem", f"{certs}/{who}/key.pem")
context.check_hostname = False
with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as sock:
    sock.sendall(frame(33, string("kv")))
    kind, body = answer(sock)
    print("query answer type", kind)
    for _ in range(count):
        sock.sendall(frame(32, string("kv") + struct.pack("<Q", 1) + string(who) + string("x:1") + string("x:2")))
        kind, body = answer(sock)
    print("test-and-set answer type", kind, body[2:].decode(errors="replace"))
PY
timeout 20 python3 "$work/tas.py" "$arb" "$certs" op 10 >"$work/tas.out" 2>&1
grep -q "only a VMM may test-and-set" "$work/tas.out"
check "the operator's test-and-set is refused with an error naming why" $? "$(cat "$work/tas.out")"
got=$(metric "$metarb" 'lockstep_arbiter_refusals_total{reason="operator"}') logged=$(grep -ac "refused (operator)" "$work/arbiter.out")
[ "$got" = 10 ] && [ "$logged" = 1 ]
check "counted (10) and logged once" $? "metric $got, $logged log lines"
echo "# 3. this cluster's own certificates still get in"
"$BIN/lockstep" status --arbiter "127.0.0.1:$arb" --vm kv --tls-dir "$certs/op" --json >"$work/status.json" 2>&1
jfield "$work/status.json" generation | grep -qx 1 && jfield "$work/status.json" primary | grep -qx node-a
check "the record is unchanged (generation 1, node-a) and an operator of this cluster still gets in" $? \
  "$(cat "$work/status.json")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
