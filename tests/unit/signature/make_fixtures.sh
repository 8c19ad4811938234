#!/usr/bin/env bash
# Signs test fixtures with the openssl command line: signers independent of ocigate's code.
# Writes the exact cosign tag layout (payload blobs and the .sig manifest), sigstore bundles
# (DSSE over an in-toto statement) and Notation JWS envelopes with their certificate chains.
# usage: make_fixtures.sh <output dir>
set -euo pipefail
out=$1
rm -rf "$out.tmp" && mkdir -p "$out.tmp" && cd "$out.tmp"

# The image being pulled, another image (for replays), and the manifest size Notation signs.
digest="sha256:$(printf 'image manifest one' | sha256sum | cut -d' ' -f1)"
other="sha256:$(printf 'image manifest two' | sha256sum | cut -d' ' -f1)"
size=1234
printf '%s' "$digest" > digest.txt
printf '%s' "$other" > other_digest.txt
printf '%s' "$size" > size.txt

b64() { base64 -w0; }
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- keys
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec256.key 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out ec384.key 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
openssl genpkey -algorithm ED25519 -out ed25519.key
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out untrusted.key 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out weak.key 2>/dev/null
for k in ec256 ec384 rsa ed25519 untrusted weak; do
  openssl pkey -in $k.key -pubout -out $k.pub
  # The SubjectPublicKeyInfo fingerprint, computed by openssl, to check ours against.
  printf 'sha256:%s' "$(openssl pkey -pubin -in $k.pub -outform DER | sha256sum | cut -d' ' -f1)" > $k.fp
done
openssl rsa -in rsa.key -RSAPublicKey_out -out rsa_pkcs1.pub 2>/dev/null
printf 'this is not a key\n' > garbage.pub
openssl genpkey -algorithm X25519 -out x25519.key && openssl pkey -in x25519.key -pubout -out x25519.pub

# ---- cosign tag signatures
payload() {  # payload <digest> <type>
  printf '{"critical":{"identity":{"docker-reference":"ghcr.io/acme/app"},"image":{"docker-manifest-digest":"%s"},"type":"%s"},"optional":null}' "$1" "$2"
}
sign() {  # sign <key> <kind> <file>  -> raw signature bytes on stdout
  case $2 in
    ecdsa|pkcs1) openssl dgst -sha256 -sign "$1" "$3" ;;
    pss) openssl dgst -sha256 -sign "$1" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 "$3" ;;
    ed25519) openssl pkeyutl -sign -inkey "$1" -rawin -in "$3" ;;
  esac
}
manifest() {  # manifest <name> <payload file> <annotations json>
  local d; d="sha256:$(sha "$2")"
  cp "$2" "blob-$(sha "$2")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:%s"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":%d,"digest":"%s","annotations":%s}]}' \
    "$(printf 'config' | sha256sum | cut -d' ' -f1)" "$(wc -c < "$2")" "$d" "$3" > "cosign-$1.json"
}
cosign_case() {  # cosign_case <name> <key> <kind> <payload file>
  local sig; sig=$(sign "$2" "$3" "$4" | b64)
  manifest "$1" "$4" "{\"dev.cosignproject.cosign/signature\":\"$sig\"}"
}
payload "$digest" "cosign container image signature" > payload-ok.json
payload "$other" "cosign container image signature" > payload-other.json
payload "$digest" "something else" > payload-badtype.json
cosign_case ec256 ec256.key ecdsa payload-ok.json
cosign_case ec384 ec384.key ecdsa payload-ok.json
cosign_case rsa-pkcs1 rsa.key pkcs1 payload-ok.json
cosign_case rsa-pss rsa.key pss payload-ok.json
cosign_case ed25519 ed25519.key ed25519 payload-ok.json
cosign_case untrusted untrusted.key ecdsa payload-ok.json
cosign_case replay ec256.key ecdsa payload-other.json
cosign_case badtype ec256.key ecdsa payload-badtype.json
# Corrupted: a valid signature with one byte flipped.
sign ec256.key ecdsa payload-ok.json > sig.bin
python3 - sig.bin <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[-3] ^= 0x01; open(sys.argv[1], 'wb').write(b)
PY
manifest corrupt payload-ok.json "{\"dev.cosignproject.cosign/signature\":\"$(b64 < sig.bin)\"}"
# Keyless: signed by an ephemeral key, carrying only a certificate and a bundle.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout fulcio.key -subj "/O=sigstore.dev/CN=sigstore-intermediate" -days 1 -out fulcio.pem 2>/dev/null
cert_json=$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' fulcio.pem)
manifest keyless payload-ok.json "{\"dev.cosignproject.cosign/signature\":\"$(sign fulcio.key ecdsa payload-ok.json | b64)\",\"dev.sigstore.cosign/certificate\":$cert_json,\"dev.sigstore.cosign/bundle\":\"{}\"}"

# ---- sigstore bundles (DSSE, in-toto statement)
statement() {  # statement <digest>
  printf '{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"ghcr.io/acme/app","digest":{"sha256":"%s"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}' "${1#sha256:}"
}
bundle() {  # bundle <name> <key> <statement file> [<statement file in the envelope>] [material]
  local type="application/vnd.in-toto+json"
  { printf 'DSSEv1 %d %s %d ' "${#type}" "$type" "$(wc -c < "$3")"; cat "$3"; } > pae.bin
  local sig; sig=$(openssl dgst -sha256 -sign "$2" pae.bin | b64)
  local body; body=$(b64 < "${4:-$3}")
  local material=${5:-'{"publicKey":{"hint":"test"},"tlogEntries":[]}'}
  printf '{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":%s,"dsseEnvelope":{"payload":"%s","payloadType":"%s","signatures":[{"sig":"%s"}]}}' \
    "$material" "$body" "$type" "$sig" > "bundle-$1.json"
}
statement "$digest" > statement-ok.json
statement "$other" > statement-other.json
bundle ok ec256.key statement-ok.json
bundle tampered ec256.key statement-other.json statement-ok.json   # signed one statement, carries another
bundle replay ec256.key statement-other.json
bundle untrusted untrusted.key statement-ok.json
bundle keyless fulcio.key statement-ok.json "" "{\"certificate\":{\"rawBytes\":\"$(openssl x509 -in fulcio.pem -outform DER | b64)\"},\"tlogEntries\":[]}"

# ---- Notation: a CA, leaf certificates, JWS envelopes
cat > leaf.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=codeSigning
EXT
ca() {  # ca <name> <subject>
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -subj "$2" -days 30 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem" 2>/dev/null
}
leaf() {  # leaf <name> <keyspec> <subject> <ca>
  openssl req -new -newkey "$2" -nodes -keyout "$1.key" -subj "$3" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$4.pem" -CAkey "$4.key" -CAcreateserial -days 7 -extfile leaf.ext -out "$1.pem" 2>/dev/null
}
ca acme-ca "/O=Acme/CN=Acme Root CA"
ca evil-ca "/O=Evil/CN=Evil Root CA"
leaf release-rsa rsa:3072 "/O=Acme/CN=release" acme-ca
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout release-ec.key -subj "/CN=release/O=Acme" -out release-ec.csr 2>/dev/null
openssl x509 -req -in release-ec.csr -CA acme-ca.pem -CAkey acme-ca.key -CAcreateserial -days 7 -extfile leaf.ext -out release-ec.pem 2>/dev/null
leaf dev rsa:2048 "/O=Acme/CN=dev" acme-ca
leaf impostor rsa:2048 "/O=Acme/CN=release" evil-ca
# A TLS server certificate from the trusted CA: the right name, the wrong usage.
openssl req -new -newkey rsa:2048 -nodes -keyout tls.key -subj "/O=Acme/CN=release" -out tls.csr 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > tls.ext
openssl x509 -req -in tls.csr -CA acme-ca.pem -CAkey acme-ca.key -CAcreateserial -days 7 -extfile tls.ext -out tls.pem 2>/dev/null
cp acme-ca.pem trust-store.pem

# The raw r||s of a DER ECDSA signature (JWS ES256), read with openssl asn1parse.
der_to_raw() {  # der_to_raw <der file> <half length>
  openssl asn1parse -inform DER -in "$1" | awk -F: '/INTEGER/ {print $NF}' | while read -r hex; do
    printf '%*s' "$(( $2 * 2 ))" "$hex" | tr ' ' '0'
  done | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read().strip()))'
}
notation() {  # notation <name> <alg> <leaf> <target digest> <target size> [cty] [extra protected fields]
  local cty=${6:-application/vnd.cncf.notary.payload.v1+json}
  local protected; protected=$(printf '{"alg":"%s","crit":["io.cncf.notary.signingScheme"%s],"cty":"%s","io.cncf.notary.signingScheme":"notary.x509","io.cncf.notary.signingTime":"2026-01-01T00:00:00Z"%s}' \
    "$2" "${7:+,\"io.cncf.notary.expiry\"}" "$cty" "${7:+,\"io.cncf.notary.expiry\":\"$7\"}" | b64url)
  local payload; payload=$(printf '{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s}}' "$4" "$5" | b64url)
  printf '%s.%s' "$protected" "$payload" > input.bin
  case $2 in
    PS256) openssl dgst -sha256 -sign "$3.key" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 input.bin > sig.bin ;;
    ES256) openssl dgst -sha256 -sign "$3.key" input.bin > sig.der && der_to_raw sig.der 32 > sig.bin ;;
  esac
  local chain; chain="\"$(openssl x509 -in "$3.pem" -outform DER | b64)\""
  printf '{"payload":"%s","protected":"%s","header":{"x5chain":[%s],"io.cncf.notary.signingAgent":"openssl"},"signature":"%s"}' \
    "$payload" "$protected" "$chain" "$(b64url < sig.bin)" > "notation-$1.json"
}
notation ps256 PS256 release-rsa "$digest" "$size"
notation es256 ES256 release-ec "$digest" "$size"
notation replay PS256 release-rsa "$other" "$size"
notation wrong-size PS256 release-rsa "$digest" 999
notation wrong-identity PS256 dev "$digest" "$size"
notation untrusted-chain PS256 impostor "$digest" "$size"
notation tls-cert PS256 tls "$digest" "$size"
notation expired PS256 release-rsa "$digest" "$size" "" "2020-01-01T00:00:00Z"
# Tampered: the payload swapped for another digest after signing.
python3 - notation-ps256.json notation-tampered.json "$other" <<'PY'
import base64, json, sys
env = json.load(open(sys.argv[1]))
payload = json.dumps({"targetArtifact": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sys.argv[3], "size": 1234}}, separators=(",", ":"))
env["payload"] = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
json.dump(env, open(sys.argv[2], "w"))
PY

rm -f ./*.csr ./*.srl input.bin pae.bin sig.bin sig.der
cd .. && rm -rf "$out" && mv "$out.tmp" "$out"
