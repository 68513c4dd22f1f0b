#!/bin/sh
# Compiles and runs the C example in README.md against the built library,
# so the first code a user reads always works.
# Usage: check_readme.sh CC LIBRESIL_A SOURCE_DIR WORK_DIR [CFLAGS...]
set -eu
cc=$1 lib=$2 src=$3 work=$4
shift 4
mkdir -p "$work"
awk '/^```c$/ {on=1; next} /^```$/ {if (on) exit} on' "$src/README.md" > "$work/readme_example.c"
[ -s "$work/readme_example.c" ] || { echo "README.md has no \`\`\`c block" >&2; exit 1; }
"$cc" -std=c11 -Wall -Wextra -Werror "$@" -I"$src/include" "$work/readme_example.c" "$lib" -lpthread \
  -o "$work/readme_example"
"$work/readme_example"
