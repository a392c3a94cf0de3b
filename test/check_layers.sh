#!/bin/sh
# check_layers.sh: the layer rule of docs/architecture.md, checked on the includes. Each folder may include its own
# headers and those of the folders below it (base < term < epmd, dist < cnode < otp, sorted_set < horde_compat <
# cmd, the programs any); the services (otp/, sorted_set/), horde_compat/ and the ops parts (cluster/) only the
# public headers below them; and the runtime (cnode/) names no service.
# Prints every broken rule and `layers: N files, N broken`; exits non-zero when one is broken.
cd "$(dirname "$0")/.." || exit 1
PUBLIC="cn_base.h cn_term.h cn_tls.h cnode.h"
broken=0
files=0

# allowed FOLDER: the headers FOLDER's files may include (besides system headers).
allowed() {
  own=$(cd "$1" && ls *.h 2>/dev/null)
  base=$(cd base && ls *.h)
  case $1 in
  base) echo "$own" ;;
  term | epmd) echo "$own $base" ;;
  dist) echo "$own $base cn_term.h" ;;
  cnode) echo "$own $base cn_term.h $(cd dist && ls *.h) epmd.h" ;;
  otp | sorted_set | horde_compat | cluster) echo "$own $PUBLIC" ;;
  cmd/*) echo "$own $(ls base term epmd dist cnode otp sorted_set horde_compat cluster cmd/cnode | grep '[.]h$')" ;;
  esac
}

for d in base term epmd dist cnode otp sorted_set horde_compat cluster cmd/cnode cmd/cnode-epmd; do
  ok=" $(allowed "$d" | tr '\n' ' ') "
  for f in "$d"/*.[ch]; do
    files=$((files + 1))
    for h in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
      case $ok in
      *" $h "*) ;;
      *) echo "layers: $f includes \"$h\", not one of its own headers or a public one below it"; broken=$((broken + 1)) ;;
      esac
    done
  done
done
# The runtime never calls up into a service: no name of one in cnode/ (code or comment).
for f in $(grep -ilE 'global|cn_global|otp/|cn_cluster|cluster/' cnode/*.[ch]); do
  echo "layers: $f names a service (global, cluster): the runtime never calls up into a service"
  broken=$((broken + 1))
done
echo "layers: $files files, $broken broken"
[ "$broken" = 0 ]
