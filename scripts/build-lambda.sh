#!/usr/bin/env bash
# Builds the room function's bootstrap.zip (x86_64, provided.al2023) with cargo-lambda and
# checks that the binary needs no glibc newer than the runtime's 2.34.
#   Output: target/lambda/bootstrap/bootstrap.zip
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v cargo-lambda >/dev/null; then
  if [ ! -x tools/venv/bin/cargo-lambda ]; then
    python3 -m venv tools/venv
    tools/venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
  fi
  export PATH="$root/tools/venv/bin:$PATH"
fi

# The `lambda` profile is release with opt-level "s": a third smaller zip at the same init
# time (docs/benchmarks.md).
cargo lambda build --profile lambda --output-format zip -p chatroom-handlers --bin bootstrap

command -v objdump >/dev/null || { apt-get update -qq && apt-get install -y -qq binutils; }
zip=target/lambda/bootstrap/bootstrap.zip
max_glibc=2.34
binary_dir=$(mktemp -d)
trap 'rm -rf "$binary_dir"' EXIT
python3 -m zipfile -e "$zip" "$binary_dir"
needed=$(objdump -T "$binary_dir/bootstrap" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1)
if [ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -n 1)" != "$max_glibc" ]; then
  echo "error: bootstrap needs glibc $needed; the provided.al2023 runtime has $max_glibc" >&2
  exit 1
fi
printf '%s: %s bytes; needs glibc %s (runtime has %s)\n' "$zip" "$(stat -c %s "$zip")" "$needed" "$max_glibc"
