#!/usr/bin/env bash
# Makes a local certificate authority and certificates signed by it, for a test or a small site.
#
#   deploy/make-certs.sh DIR [--name HOST_OR_IP]... [--client ID]... [--days N]
#
# In DIR (created when missing):
#   ca.crt, ca.key          the authority (kept and reused when DIR already has one)
#   server.crt, server.key  a server certificate for every --name (default: localhost and
#                           127.0.0.1), for the broker (Mosquitto's certfile/keyfile, or
#                           firewatch's mqtt.embedded_tls_cert/_key) and for firewatch's HTTPS
#   clients/ID.crt, .key    a client certificate per --client with common name ID: a device
#                           whose certificate names its own device id (Mosquitto's
#                           use_identity_as_username, firewatch's embedded broker)
#
# Keys are EC P-256 in PKCS#8, readable by the owner only. Give ca.crt to every client that must
# trust the server (mqtt.ca_file) and to the broker that must trust the client certificates
# (Mosquitto's cafile, mqtt.embedded_client_ca). Keep ca.key off the servers; a larger site uses
# its own PKI instead of this script.
set -euo pipefail

usage() {
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

[ $# -ge 1 ] || usage
dir=$1
shift
names=()
clients=()
days=825
while [ $# -gt 0 ]; do
    case $1 in
        --name) names+=("$2"); shift 2 ;;
        --client) clients+=("$2"); shift 2 ;;
        --days) days=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "make-certs: unknown argument $1" >&2; usage ;;
    esac
done
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1)
command -v openssl >/dev/null || { echo "make-certs: openssl is not installed" >&2; exit 1; }

umask 077
mkdir -p "$dir/clients"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
    key ca.key
    openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=firewatch local CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
    echo "make-certs: new authority $dir/ca.crt"
fi

# sign NAME KEY CRT EXT: a certificate for KEY with common name NAME and extensions EXT.
sign() {
    local name=$1 key=$2 crt=$3 ext=$4
    key "$key"
    openssl req -new -key "$key" -subj "/CN=$name" -out "$crt.csr"
    openssl x509 -req -in "$crt.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days "$days" -extfile <(printf '%s\n' "$ext") -out "$crt" 2>/dev/null
    rm -f "$crt.csr"
}

san=""
for n in "${names[@]}"; do
    if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
sign "${names[0]}" server.key server.crt \
    "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=${san%,}"
echo "make-certs: server certificate $dir/server.crt for ${names[*]}"

for c in "${clients[@]}"; do
    sign "$c" "clients/$c.key" "clients/$c.crt" \
        "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    echo "make-certs: client certificate $dir/clients/$c.crt"
done
chmod 0644 ca.crt server.crt clients/*.crt 2>/dev/null || true
