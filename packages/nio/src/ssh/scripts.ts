/**
 * Fixed shell scripts the session runs as `sh -c <script> <name> <args…>`. The script text is constant; every
 * variable part arrives as a positional parameter (a quoted argv element) and is only ever used in double quotes,
 * so no input is parsed as shell code. Exit codes above 40 are the scripts' own verdicts.
 */

/** Exit code of UPLOAD when the directory appeared meanwhile (a concurrent upload of the same content won). */
export const UPLOAD_ALREADY_PRESENT = 43;
/** Exit code of READ for a missing file, and for a path that is not a regular file. */
export const READ_NOT_FOUND = 44;
export const READ_NOT_A_FILE = 45;

/**
 * $1 target dir, $2 its parent, $3 the temporary dir (a sibling of $1). Extracts the tar on stdin into $3, then
 * renames $3 to $1. umask 077: every directory created here (parents included) has mode 0700; files keep only the
 * owner's permission bits and belong to the extracting user (--no-same-owner), whatever the archive says.
 */
export const UPLOAD = `set -eu
umask 077
dir=$1 parent=$2 tmp=$3
trap 'rm -rf -- "$tmp"' EXIT
mkdir -p -- "$parent"
mkdir -- "$tmp"
tar -x --no-same-owner --no-same-permissions -f - -C "$tmp"
chmod 0700 -- "$tmp"
if mv -T -- "$tmp" "$dir" 2>/dev/null; then exit 0; fi
if [ -d "$dir" ]; then exit ${UPLOAD_ALREADY_PRESENT}; fi
echo "cannot rename the upload into place: $dir" >&2
exit 1
`;

/**
 * $1 target path, $2 its parent, $3 the temporary file (a sibling of $1), $4 octal mode. Copies stdin into $3 owned
 * by root:root with mode $4 (install sets both before the file gets its name $1), flushes it, then renames it over
 * $1 (-T: never into a directory of that name). A missing parent is created with mode 0755.
 */
export const WRITE = `set -eu
path=$1 parent=$2 tmp=$3 mode=$4
trap 'rm -f -- "$tmp"' EXIT
if [ ! -d "$parent" ]; then (umask 022 && mkdir -p -- "$parent"); fi
install -m "$mode" -o root -g root /dev/stdin "$tmp"
sync -- "$tmp" 2>/dev/null || :
mv -f -T -- "$tmp" "$path"
`;

/** $1 path, $2 byte limit (+1, so the caller sees an oversized file). */
export const READ = `if [ ! -e "$1" ]; then echo "no such file: $1" >&2; exit ${READ_NOT_FOUND}; fi
if [ ! -f "$1" ]; then echo "not a regular file: $1" >&2; exit ${READ_NOT_A_FILE}; fi
exec head -c "$2" -- "$1"
`;

/**
 * $1 run id, $2 grace period in tenths of a second. Sends TERM to every process whose environment has
 * NIO_RUN_ID=$1 (the command and everything it started, however deep), repeating for processes that appear
 * meanwhile; after the grace period sends KILL. Ends when none is left (exit 0) or gives up after one more second.
 */
export const KILL = `id=$1 grace=$2
scan() { grep -l -z -x -F -e "NIO_RUN_ID=$id" /proc/[0-9]*/environ 2>/dev/null | sed -n 's|^/proc/\\([0-9][0-9]*\\)/environ$|\\1|p'; }
i=0 sig=TERM
while :; do
  pids=$(scan)
  [ -n "$pids" ] || exit 0
  [ "$i" -lt "$grace" ] || sig=KILL
  [ "$i" -lt $((grace + 10)) ] || exit 1
  kill -s "$sig" $pids 2>/dev/null
  sleep 0.1 2>/dev/null || sleep 1
  i=$((i + 1))
done
`;
