# shellcheck shell=bash
# Shared helpers of the NIO testbed's host-side stand-ins (sourced, not run).
# Records are JSON lines in $NIO_TESTBED_RECORD_DIR (default /var/log/testbed) inside the host, one file per tool.

TB_RECORD_DIR=${NIO_TESTBED_RECORD_DIR:-/var/log/testbed}
# shellcheck disable=SC2034 # used by the scripts that source this file
TB_CONTROL_DIR=${NIO_TESTBED_CONTROL_DIR:-/opt/testbed/control}

# Milliseconds since the epoch, and an ISO 8601 UTC timestamp.
tb_ms() { date +%s%3N; }
tb_now() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }

# Prints a JSON array of its arguments (each passed to jq as data, never as code).
tb_json_array() {
  local -a jqargs=()
  local i=0 a
  for a in "$@"; do
    jqargs+=(--arg "$i" "$a")
    i=$((i + 1))
  done
  jq -cn "${jqargs[@]}" '$ARGS.named | to_entries | sort_by(.key | tonumber) | map(.value)'
}

# Appends one JSON object (given as a string) as a line to the record file of TOOL.
tb_record() {
  local tool=$1 json=$2
  [[ $tool =~ ^[a-z0-9-]+$ ]] || return 1
  if ! (umask 000 && mkdir -p -- "$TB_RECORD_DIR" && printf '%s\n' "$json" >>"$TB_RECORD_DIR/$tool.jsonl") 2>/dev/null; then
    printf '%s: warning: could not write the testbed record\n' "$tool" >&2
  fi
}

# The common fields of a record, as a JSON object: tool, time, argv, user, sudoUser (if run through sudo).
tb_base_record() {
  local tool=$1
  shift
  jq -cn --arg tool "$tool" --arg time "$(tb_now)" --argjson argv "$(tb_json_array "$@")" \
    --arg user "$(id -un)" --arg sudoUser "${SUDO_USER:-}" \
    '{tool: $tool, time: $time, argv: $argv, user: $user} + (if $sudoUser == "" then {} else {sudoUser: $sudoUser} end)'
}

# A JSON array describing the files below DIR (sorted; .git skipped): path, type, sha256, mode, target.
tb_list_files() {
  local dir=$1 f p
  [[ -d $dir ]] || {
    echo null
    return
  }
  (
    cd -- "$dir" || exit 1
    find . -path ./.git -prune -o \( -type f -o -type l \) -print0 | sort -z |
      while IFS= read -r -d '' f; do
        p=${f#./}
        if [[ -L $f ]]; then
          jq -cn --arg path "$p" --arg target "$(readlink -- "$f")" --arg mode "$(stat -c %04a -- "$f")" \
            '{path: $path, type: "symlink", mode: $mode, target: $target}'
        else
          jq -cn --arg path "$p" --arg sha256 "$(sha256sum <"$f" | cut -d' ' -f1)" --arg mode "$(stat -c %04a -- "$f")" \
            '{path: $path, type: "file", sha256: $sha256, mode: $mode}'
        fi
      done | jq -cs .
  )
}

# Numbers of the generations in PROFILES_DIR (system-<N>-link), ascending.
tb_generations() {
  local profiles=$1 l n
  for l in "$profiles"/system-*-link; do
    [[ -L $l ]] || continue
    n=${l##*/system-}
    n=${n%-link}
    [[ $n =~ ^[0-9]+$ ]] && echo "$n"
  done | sort -n
}

# Makes SYSTEM_PATH the current generation of the system profile, like `nix-env -p ... --set`: a new
# system-<N>-link unless the newest generation already points there. Prints the generation number.
tb_set_system_profile() {
  local system=$1 profiles=/nix/var/nix/profiles last n
  mkdir -p -- "$profiles"
  last=$(tb_generations "$profiles" | tail -n1)
  if [[ -n $last && $(readlink -- "$profiles/system-$last-link") == "$system" ]]; then
    n=$last
  else
    n=$((${last:-0} + 1))
    ln -sfn -- "$system" "$profiles/system-$n-link"
  fi
  ln -sfn -- "system-$n-link" "$profiles/.system.tmp.$$"
  mv -Tf -- "$profiles/.system.tmp.$$" "$profiles/system"
  echo "$n"
}

# Points /run/current-system at SYSTEM_PATH (what activation does).
tb_activate() {
  ln -sfn -- "$1" /run/.current-system.tmp.$$
  mv -Tf -- /run/.current-system.tmp.$$ /run/current-system
}

# The store path the system profile points to (through its generation link), or nothing.
tb_profile_system() {
  local profiles=/nix/var/nix/profiles gen
  gen=$(readlink -- "$profiles/system" 2>/dev/null) || return 0
  [[ $gen == /* ]] || gen=$profiles/$gen
  readlink -- "$gen" 2>/dev/null || true
}
