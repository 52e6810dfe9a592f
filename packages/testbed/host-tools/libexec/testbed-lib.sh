# shellcheck shell=bash
# Shared helpers of the NIO testbed's host-side stand-ins (sourced, not run).
# Records are JSON lines in $NIO_TESTBED_RECORD_DIR (default /var/log/testbed) inside the host, one file per tool.

TB_RECORD_DIR=${NIO_TESTBED_RECORD_DIR:-/var/log/testbed}
# shellcheck disable=SC2034 # used by the scripts that source this file
TB_CONTROL_DIR=${NIO_TESTBED_CONTROL_DIR:-/opt/testbed/control}

# Milliseconds since the epoch, and an ISO 8601 UTC timestamp.
tb_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  echo $((t / 1000))
}
tb_now() {
  local t=$EPOCHREALTIME d
  TZ=UTC0 printf -v d '%(%Y-%m-%dT%H:%M:%S)T' "${t%[.,]*}"
  local frac=${t#*[.,]}
  printf '%s.%sZ\n' "$d" "${frac:0:3}"
}

# The hot path of every simulated rebuild writes its records without jq: jq 1.6 needs ~25 ms just to start, which
# made the stand-in, not the operator, the bottleneck of parallel-apply benchmarks.
# Sets REPLY to the JSON string literal of $1.
tb_json_str() {
  local s=$1 out="" c i
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/\\t}
  s=${s//$'\r'/\\r}
  if [[ $s == *[[:cntrl:]]* ]]; then
    for ((i = 0; i < ${#s}; i++)); do
      c=${s:i:1}
      [[ $c == [[:cntrl:]] ]] && printf -v c '\\u%04x' "'$c"
      out+=$c
    done
    s=$out
  fi
  REPLY="\"$s\""
}

# Sets REPLY to a JSON array of the arguments (strings).
tb_json_strs() {
  local out="" a
  for a in "$@"; do
    tb_json_str "$a"
    out+=${out:+,}$REPLY
  done
  REPLY="[$out]"
}

# Prints a JSON array of its arguments (strings).
tb_json_array() {
  tb_json_strs "$@"
  printf '%s\n' "$REPLY"
}

# Appends one JSON object (given as a string) as a line to the record file of TOOL.
tb_record() {
  local tool=$1 json=$2
  [[ $tool =~ ^[a-z0-9-]+$ ]] || return 1
  # (a new record file or directory is writable for all: tools run as root and as the ssh user)
  if [[ -f $TB_RECORD_DIR/$tool.jsonl ]] && printf '%s\n' "$json" 2>/dev/null >>"$TB_RECORD_DIR/$tool.jsonl"; then
    return 0
  fi
  if ! (umask 000 && mkdir -p -- "$TB_RECORD_DIR" && printf '%s\n' "$json" >>"$TB_RECORD_DIR/$tool.jsonl") 2>/dev/null; then
    printf '%s: warning: could not write the testbed record\n' "$tool" >&2
  fi
}

# The common fields of a record, as a JSON object: tool, time, argv, user, sudoUser (if run through sudo).
tb_base_record() {
  local tool=$1 json
  shift
  tb_json_str "$tool"
  json="{\"tool\":$REPLY"
  tb_json_str "$(tb_now)"
  json+=",\"time\":$REPLY"
  tb_json_strs "$@"
  json+=",\"argv\":$REPLY"
  if ((EUID == 0)); then tb_json_str root; else tb_json_str "$(id -un)"; fi
  json+=",\"user\":$REPLY"
  if [[ -n ${SUDO_USER:-} ]]; then
    tb_json_str "$SUDO_USER"
    json+=",\"sudoUser\":$REPLY"
  fi
  printf '%s}\n' "$json"
}

# A JSON array describing the files below DIR (sorted by path; .git skipped): path, type, sha256, mode, target.
# Two finds, one sort and one sha256sum however many files there are.
tb_list_files() {
  local dir=$1
  [[ -d $dir ]] || {
    echo null
    return
  }
  (
    cd -- "$dir" || exit 1
    local -a meta sums paths
    local -A type mode target hash
    local i p json=""
    mapfile -d '' meta < <(find . -path ./.git -prune -o \( -type f -o -type l \) -printf '%y\0%m\0%P\0%l\0')
    mapfile -d '' sums < <(find . -path ./.git -prune -o -type f -exec sha256sum -z -- {} +)
    for ((i = 0; i + 3 < ${#meta[@]}; i += 4)); do
      p=${meta[i + 2]}
      type[$p]=${meta[i]}
      mode[$p]=000${meta[i + 1]}
      target[$p]=${meta[i + 3]}
    done
    for p in "${sums[@]}"; do
      hash[${p:68}]=${p:0:64} # "<sha256>  ./<path>"
    done
    ((${#type[@]} > 0)) && mapfile -d '' paths < <(printf '%s\0' "${!type[@]}" | LC_ALL=C sort -z)
    for p in "${paths[@]}"; do
      tb_json_str "$p"
      json+=${json:+,}"{\"path\":$REPLY,"
      if [[ ${type[$p]} == l ]]; then
        tb_json_str "${target[$p]}"
        json+="\"type\":\"symlink\",\"mode\":\"${mode[$p]: -4}\",\"target\":$REPLY}"
      else
        json+="\"type\":\"file\",\"sha256\":\"${hash[$p]}\",\"mode\":\"${mode[$p]: -4}\"}"
      fi
    done
    printf '[%s]\n' "$json"
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

# Sets REPLY to the newest generation number in PROFILES_DIR ("" if none).
tb_last_generation() {
  local l n last=""
  for l in "$1"/system-*-link; do
    n=${l##*/system-}
    n=${n%-link}
    [[ -L $l && $n =~ ^[0-9]+$ ]] && ((n > ${last:-0})) && last=$n
  done
  REPLY=$last
}

# Makes SYSTEM_PATH the current generation of the system profile, like `nix-env -p ... --set`: a new
# system-<N>-link unless the newest generation already points there. Sets REPLY to the generation number.
tb_set_system_profile() {
  local system=$1 profiles=/nix/var/nix/profiles last n
  [[ -d $profiles ]] || mkdir -p -- "$profiles"
  tb_last_generation "$profiles"
  last=$REPLY
  if [[ -n $last && $(readlink -- "$profiles/system-$last-link") == "$system" ]]; then
    n=$last
  else
    n=$((${last:-0} + 1))
    ln -sfn -- "$system" "$profiles/system-$n-link"
  fi
  ln -sfn -- "system-$n-link" "$profiles/.system.tmp.$$"
  mv -Tf -- "$profiles/.system.tmp.$$" "$profiles/system"
  REPLY=$n
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

# ---------------------------------------------------------------------------------------------------------------
# Simulated activation: what switching to a system does besides /run/current-system, for systems built from the stub
# nixpkgs (their toplevel holds the merged configuration as config.json; a system without one, e.g. from
# instant-apply, is only linked). In the order of switch-to-configuration:
#   1. "stop" the services the previous system ran and this one does not (k3s, keepalived): a record each;
#   2. run system.activationScripts (a string or {text}), in name order (deps are not followed), each in its own
#      bash as root inside the host, with NixOS's error convention (a failing command marks the snippet failed,
#      the snippet goes on): "Activation script snippet 'NAME' failed (N)";
#   3. "start" the services: services.k3s (checks like k3s: the token file must exist and not be empty, an agent
#      needs a server; a server gets /var/lib/rancher/k3s/server and, unless present, a fake admin kubeconfig
#      /etc/rancher/k3s/k3s.yaml with the --write-kubeconfig-mode of extraFlags, default 0600) and
#      services.keepalived (its vrrpInstances are recorded). Records: $TB_RECORD_DIR/{k3s,keepalived}.jsonl.
# Activation scripts run as root in the host's chroot and namespaces, but with the machine's network: the testbed
# drops CAP_NET_ADMIN, and scripts should leave the network to services (which are not run) anyway.
# Sets TB_ACTIVATION to a JSON summary for the caller's record and returns 0, 2 (an activation script failed) or
# 4 (a service failed), like switch-to-configuration.
TB_ACTIVATION=null

tb_config_value() { # CONFIG_JSON JQ_FILTER: prints the value (compact JSON), "null" when there is no config
  if [[ -f $1 ]]; then jq -c "$2" "$1"; else echo null; fi
}

tb_simulate_activation() { # SYSTEM PREVIOUS_SYSTEM ATTR (PREVIOUS_SYSTEM may be empty: a boot)
  local system=$1 prev=$2 attr=$3 cfg=$1/config.json status=0 scripts=[] units=[] rc
  TB_ACTIVATION=null
  [[ -f $cfg ]] || return 0
  local prev_cfg=${prev:+$prev/config.json}
  local svc
  for svc in k3s keepalived; do
    if [[ -n $prev_cfg && $(tb_config_value "$prev_cfg" ".services.$svc.enable // false") == true &&
      $(tb_config_value "$cfg" ".services.$svc.enable // false") != true ]]; then
      echo "stopping the following units: $svc.service" >&2
      tb_record "$svc" "$(jq -cn --arg time "$(tb_now)" --arg tool "$svc" --arg attr "$attr" --arg system "$system" \
        '{tool: $tool, time: $time, event: "stop", attr: $attr, systemPath: $system}')"
      units=$(jq -c --arg u "$svc.service" '. + [{unit: $u, event: "stop", result: "success"}]' <<<"$units")
    fi
  done

  local name text
  while IFS= read -r -d '' name; do
    text=$(jq -r --arg n "$name" '.system.activationScripts[$n] | if type == "string" then . else (.text // "") end' "$cfg")
    rc=0
    # shellcheck disable=SC2016 # the trap is for the inner shell
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 systemConfig="$system" \
      bash --noprofile --norc -c '_localstatus=0
trap "_localstatus=\$?" ERR
'"$text"'
exit "$_localstatus"' 9>&- >&2 || rc=$?
    if ((rc != 0)); then
      printf "Activation script snippet '%s' failed (%s)\n" "$name" "$rc" >&2
      status=2
    fi
    scripts=$(jq -c --arg n "$name" --argjson rc "$rc" '. + [{name: $n, exitCode: $rc}]' <<<"$scripts")
  done < <(jq -j '.system.activationScripts // {} | keys[] | . + "\u0000"' "$cfg")

  local unit
  if [[ $(jq -r '.services.k3s.enable // false' "$cfg") == true ]]; then
    unit=$(tb_simulate_k3s "$system" "$attr") || status=4
    units=$(jq -c --argjson u "$unit" '. + [$u]' <<<"$units")
  fi
  if [[ $(jq -r '.services.keepalived.enable // false' "$cfg") == true ]]; then
    tb_record keepalived "$(jq -c --arg time "$(tb_now)" --arg attr "$attr" --arg system "$system" \
      '{tool: "keepalived", time: $time, event: "start", attr: $attr, systemPath: $system,
        vrrpInstances: (.services.keepalived.vrrpInstances // {})}' "$cfg")"
    units=$(jq -c '. + [{unit: "keepalived.service", event: "start", result: "success"}]' <<<"$units")
  fi
  if ((status == 4)); then
    echo "warning: the following units failed: $(jq -r '[.[] | select(.result == "failed") | .unit] | join(", ")' <<<"$units")" >&2
  fi
  # shellcheck disable=SC2034 # read by the scripts that source this file
  TB_ACTIVATION=$(jq -cn --argjson s "$scripts" --argjson u "$units" --argjson status "$status" \
    '{scripts: $s, units: $u, exitCode: $status}')
  return "$status"
}

# "Starts" k3s from the system's config.json: prints the unit summary (JSON), records to k3s.jsonl, returns 1 when
# k3s would fail to start.
tb_simulate_k3s() { # SYSTEM ATTR
  local system=$1 attr=$2 cfg=$1/config.json settings role server token_file token_set error="" mode kubeconfig=""
  settings=$(jq -c '.services.k3s | {
      role: (.role // "server"), clusterInit: (.clusterInit // false), serverAddr: (.serverAddr // ""),
      tokenFile: (.tokenFile // null), tokenSet: ((.token // "") != ""),
      extraFlags: (.extraFlags // [] | if type == "string" then [splits("\\s+") | select(. != "")] else . end)}' "$cfg")
  role=$(jq -r .role <<<"$settings")
  server=$(jq -r .serverAddr <<<"$settings")
  token_file=$(jq -r '.tokenFile // ""' <<<"$settings")
  token_set=$(jq -r .tokenSet <<<"$settings")
  if [[ -n $token_file && ! -e $token_file ]]; then
    error="k3s: token file $token_file missing"
  elif [[ -n $token_file && ! -s $token_file ]]; then
    error="k3s: token file $token_file is empty"
  elif [[ $role == agent && -z $server ]]; then
    error="k3s: --server is required to run an agent"
  elif [[ -z $token_file && $token_set != true && ($role == agent || -n $server) ]]; then
    error="k3s: --token or --token-file is required to join a cluster"
  elif [[ $role == server ]]; then
    mode=$(jq -r '.extraFlags as $f | [range(0; $f | length) as $i
        | if ($f[$i] | startswith("--write-kubeconfig-mode=")) then ($f[$i] | sub("^[^=]*="; ""))
          elif $f[$i] == "--write-kubeconfig-mode" then ($f[$i + 1] // empty) else empty end] | last // "0600"' \
      <<<"$settings")
    [[ $mode =~ ^0?[0-7]{3}$ ]] || mode=0600
    mkdir -p /var/lib/rancher/k3s/server /etc/rancher/k3s
    kubeconfig=/etc/rancher/k3s/k3s.yaml
    [[ -e $kubeconfig ]] || tb_write_kubeconfig "$kubeconfig"
    chmod "$mode" "$kubeconfig"
  else
    mkdir -p /var/lib/rancher/k3s/agent
  fi
  if [[ -n $error ]]; then
    printf '%s\n' "$error" >&2
  fi
  tb_record k3s "$(jq -cn --argjson s "$settings" --arg time "$(tb_now)" --arg attr "$attr" --arg system "$system" \
    --arg error "$error" --arg kubeconfig "$kubeconfig" '
      {tool: "k3s", time: $time, event: "start", attr: $attr, systemPath: $system} + $s
      + (if $error == "" then {result: "running"} else {result: "failed", error: $error} end)
      + (if $kubeconfig == "" then {} else {kubeconfig: $kubeconfig} end)')"
  jq -cn --arg error "$error" '{unit: "k3s.service", event: "start"}
    + (if $error == "" then {result: "success"} else {result: "failed", error: $error} end)'
  [[ -z $error ]]
}

# Base64 of a PEM block of KIND with random content (not a usable key or certificate).
tb_fake_pem_base64() { # KIND
  printf -- '-----BEGIN %s-----\n%s\n-----END %s-----\n' "$1" "$(head -c 48 /dev/urandom | base64 -w0)" "$1" | base64 -w0
}

# Writes a k3s-style admin kubeconfig (server https://127.0.0.1:6443, fake certificate data) to PATH, mode 0600.
tb_write_kubeconfig() { # PATH
  local ca cert key
  ca=$(tb_fake_pem_base64 CERTIFICATE)
  cert=$(tb_fake_pem_base64 CERTIFICATE)
  key=$(tb_fake_pem_base64 "EC PRIVATE KEY")
  (
    umask 077
    cat >"$1.tmp" <<YAML
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $ca
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: $cert
    client-key-data: $key
YAML
    chmod 0600 "$1.tmp" && mv -f -- "$1.tmp" "$1"
  )
}

# instant-apply with "k3s" in the control file (benchmarks): no evaluation, so no roles either; a switch to any
# attribute but `minimal` gets the admin kubeconfig a server would write, `minimal` removes the k3s state like the
# flake's cleanup. Recorded to k3s.jsonl with "instant": true.
tb_instant_k3s() { # ATTR SYSTEM
  local attr=$1 system=$2 event=start
  if [[ $attr == minimal ]]; then
    event=stop
    rm -rf /var/lib/rancher/k3s /etc/rancher
    rm -f /var/lib/nico/join-token
  else
    mkdir -p /var/lib/rancher/k3s/server /etc/rancher/k3s
    [[ -e /etc/rancher/k3s/k3s.yaml ]] || tb_write_kubeconfig /etc/rancher/k3s/k3s.yaml
  fi
  tb_record k3s "$(jq -cn --arg time "$(tb_now)" --arg attr "$attr" --arg system "$system" --arg event "$event" \
    '{tool: "k3s", time: $time, event: $event, attr: $attr, systemPath: $system, instant: true}
     + (if $event == "start" then {result: "running", kubeconfig: "/etc/rancher/k3s/k3s.yaml"} else {} end)')"
}
