#!/usr/bin/env bash
# Makes a throw-away PKI for TLS tests and trials (docs/security.md): a test CA, a broker
# certificate for localhost / 127.0.0.1, one client certificate per vehicle with the VIN
# as its CN, and an operator certificate (CN = $OTA_OPERATOR_CN, default "admin"). With
# `require_certificate true` and `use_identity_as_username true` the broker takes the CN
# as the username, and the plugin takes the username as the VIN (or the operator name).
#
# Usage: scripts/make-test-certs.sh OUTDIR [VIN...]
#   (default VINs: LSVTA000000000001 LSVTA000000000002)
# Writes OUTDIR/ca.{crt,key}, server.{crt,key}, vehicle-<VIN>.{crt,key},
# operator.{crt,key}, and rogue-ca.{crt,key} + rogue-<first VIN>.{crt,key}: a certificate
# for the first VIN signed by another CA, which the broker must refuse.
# Keys are EC P-256, certificates valid for 30 days. Never use these in production: the
# CA key sits beside the certificates.
set -euo pipefail
out=${1:?usage: make-test-certs.sh OUTDIR [VIN...]}
shift
vins=("$@")
[ ${#vins[@]} -eq 0 ] && vins=(LSVTA000000000001 LSVTA000000000002)
operator=${OTA_OPERATOR_CN:-admin}
mkdir -p "$out"
cd "$out"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/O=mosquitto-ota test/CN=$2" -days 30 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
        -out "$1.crt" 2>/dev/null
}

leaf() { # name CN ca usage [subjectAltName]
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/O=mosquitto-ota test/CN=$2" -out "$1.csr" 2>/dev/null
    local ext
    ext=$(mktemp)
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n' "$4" >"$ext"
    [ -n "${5:-}" ] && printf 'subjectAltName=%s\n' "$5" >>"$ext"
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 30 \
        -extfile "$ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$ext"
}

ca ca "mosquitto-ota test CA"
leaf server localhost ca serverAuth "DNS:localhost,IP:127.0.0.1"
for v in "${vins[@]}"; do
    leaf "vehicle-$v" "$v" ca clientAuth
done
leaf operator "$operator" ca clientAuth
ca rogue-ca "rogue CA"
leaf "rogue-${vins[0]}" "${vins[0]}" rogue-ca clientAuth
rm -f ./*.srl
chmod 600 ./*.key
echo "test PKI in $(pwd): CA, server, ${#vins[@]} vehicles, operator $operator, rogue ${vins[0]}"
