# Stub package set for the testbed's nixpkgs flake. Every package is a tiny derivation built with /bin/sh (no
# network, no compiler): its output holds `bin/<name>` scripts that only print what they were called with.
{ lib, system ? "x86_64-linux" }:
let
  b = builtins;

  platform = {
    inherit system;
    config = system;
    isLinux = true;
    isDarwin = false;
    isx86_64 = system == "x86_64-linux";
    isAarch64 = system == "aarch64-linux";
    parsed = { cpu = { name = b.head (lib.splitString "-" system); }; kernel = { name = "linux"; }; };
  };

  # A derivation built by /bin/sh with the host's /usr/bin and /bin on PATH (the testbed's Nix has no sandbox).
  mkShDerivation = { name, script, ... }@attrs:
    b.derivation ({
      inherit system;
      builder = "/bin/sh";
      args = [ "-c" ("set -e\n" + script) ];
      PATH = "/usr/bin:/bin";
    } // b.removeAttrs attrs [ "script" "passthru" "meta" ]);

  withPassthru = drv: extra: drv // { meta = { }; passthru = { }; } // extra;

  fakePackage = pname: { version ? "0.0.0-stub", bins ? [ pname ], passthru ? { } }:
    let
      drv = withPassthru
        (mkShDerivation {
          name = "${pname}-${version}";
          bins = b.concatStringsSep " " bins;
          stub = "#!/bin/sh\necho \"testbed stub: ${pname} $*\"\n";
          script = ''
            mkdir -p "$out/bin"
            for bin in $bins; do
              printf '%s' "$stub" > "$out/bin/$bin"
              chmod 755 "$out/bin/$bin"
            done
          '';
        })
        ({
          inherit pname version;
          meta = { mainProgram = b.head bins; description = "testbed stub of ${pname}"; platforms = lib.platforms.linux; };
          override = _: drv;
          overrideAttrs = _: drv;
          overrideDerivation = _: drv;
          out = drv;
          bin = drv;
          outputs = [ "out" ];
        } // passthru);
    in
    drv;

  # name = [ binaries ]; an empty list means "the package name itself"
  packageBins = {
    k3s = [ "k3s" "kubectl" "crictl" "ctr" ];
    k3s_1_28 = [ "k3s" ];
    k3s_1_29 = [ "k3s" ];
    k3s_1_30 = [ "k3s" ];
    k3s_1_31 = [ "k3s" ];
    rke2 = [ ];
    keepalived = [ ];
    haproxy = [ ];
    openssh = [ "ssh" "sshd" "ssh-keygen" "scp" ];
    coreutils = [ "ls" "cat" "cp" "mv" "rm" "mkdir" "echo" "test" ];
    coreutils-full = [ "ls" ];
    bash = [ "bash" "sh" ];
    bashInteractive = [ "bash" ];
    dash = [ ];
    zsh = [ ];
    fish = [ ];
    kubectl = [ ];
    kubernetes = [ "kubectl" "kubelet" "kube-apiserver" ];
    kubernetes-helm = [ "helm" ];
    helm = [ ];
    k9s = [ ];
    kustomize = [ ];
    kubectx = [ "kubectx" "kubens" ];
    fluxcd = [ "flux" ];
    argocd = [ ];
    cilium-cli = [ "cilium" ];
    calicoctl = [ ];
    etcd = [ "etcd" "etcdctl" ];
    etcd_3_5 = [ "etcd" "etcdctl" ];
    containerd = [ "containerd" "ctr" ];
    runc = [ ];
    cri-tools = [ "crictl" ];
    cni-plugins = [ "bridge" "host-local" "loopback" ];
    git = [ ];
    curl = [ ];
    wget = [ ];
    vim = [ ];
    neovim = [ "nvim" ];
    nano = [ ];
    htop = [ ];
    btop = [ ];
    iproute2 = [ "ip" "ss" "tc" ];
    iptables = [ "iptables" "ip6tables" ];
    iptables-legacy = [ "iptables" ];
    nftables = [ "nft" ];
    iputils = [ "ping" ];
    nettools = [ "ifconfig" "netstat" ];
    dnsutils = [ "dig" "nslookup" ];
    bind = [ "dig" ];
    inetutils = [ "telnet" ];
    netcat = [ "nc" ];
    netcat-gnu = [ "nc" ];
    socat = [ ];
    conntrack-tools = [ "conntrack" ];
    ethtool = [ ];
    tcpdump = [ ];
    iperf3 = [ ];
    mtr = [ ];
    nmap = [ ];
    wireguard-tools = [ "wg" ];
    openvpn = [ ];
    jq = [ ];
    yq = [ ];
    yq-go = [ "yq" ];
    gnugrep = [ "grep" ];
    gnused = [ "sed" ];
    gawk = [ "awk" ];
    findutils = [ "find" "xargs" ];
    diffutils = [ "diff" ];
    util-linux = [ "mount" "lsblk" "blkid" ];
    e2fsprogs = [ "mkfs.ext4" ];
    lvm2 = [ "lvm" "pvcreate" "vgcreate" "lvcreate" ];
    thin-provisioning-tools = [ "thin_check" ];
    parted = [ ];
    gptfdisk = [ "sgdisk" ];
    dosfstools = [ "mkfs.vfat" ];
    xfsprogs = [ "mkfs.xfs" ];
    btrfs-progs = [ "btrfs" ];
    cryptsetup = [ ];
    mdadm = [ ];
    zfs = [ "zfs" "zpool" ];
    systemd = [ "systemctl" "journalctl" ];
    nix = [ ];
    nixos-rebuild = [ ];
    nixos-facter = [ ];
    nixos-anywhere = [ ];
    disko = [ ];
    openssl = [ ];
    cacert = [ ];
    gnupg = [ "gpg" ];
    age = [ ];
    sops = [ ];
    rsync = [ ];
    tmux = [ ];
    screen = [ ];
    less = [ ];
    which = [ ];
    file = [ ];
    tree = [ ];
    gzip = [ ];
    gnutar = [ "tar" ];
    xz = [ ];
    zstd = [ ];
    unzip = [ ];
    zip = [ ];
    python3 = [ "python3" ];
    perl = [ ];
    sudo = [ ];
    shadow = [ "useradd" "passwd" ];
    procps = [ "ps" "top" "sysctl" ];
    psmisc = [ "killall" ];
    lsof = [ ];
    strace = [ ];
    pciutils = [ "lspci" ];
    usbutils = [ "lsusb" ];
    smartmontools = [ "smartctl" ];
    nvme-cli = [ "nvme" ];
    hdparm = [ ];
    kmod = [ "modprobe" ];
    nfs-utils = [ "mount.nfs" ];
    openiscsi = [ "iscsiadm" ];
    open-iscsi = [ "iscsiadm" ];
    chrony = [ "chronyc" ];
    ntp = [ ];
    dhcpcd = [ ];
    openresolv = [ "resolvconf" ];
    glibc = [ "ldd" ];
    glibcLocales = [ ];
    tzdata = [ ];
    linux-firmware = [ ];
    qemu = [ ];
    qemu_kvm = [ ];
    docker = [ ];
    podman = [ ];
    prometheus-node-exporter = [ "node_exporter" ];
    fail2ban = [ ];
    acl = [ "setfacl" ];
    attr = [ "setfattr" ];
    bc = [ ];
    dmidecode = [ ];
    ipset = [ ];
    ebtables = [ ];
    bridge-utils = [ "brctl" ];
    vlan = [ "vconfig" ];
    ipvsadm = [ ];
    logrotate = [ ];
    cron = [ "crontab" ];
    hello = [ ];
  };

  fakes = b.mapAttrs (name: bins: fakePackage name { bins = if bins == [ ] then [ name ] else bins; }) packageBins;

  writeTextFile = { name, text, executable ? false, destination ? "", checkPhase ? "", ... }:
    withPassthru
      (mkShDerivation {
        inherit name text destination;
        passAsFile = [ "text" ];
        mode = if executable then "755" else "644";
        script = ''
          target="$out$destination"
          mkdir -p "$(dirname "$target")"
          cp "$textPath" "$target"
          chmod "$mode" "$target"
        '';
      })
      { };

  writeShellScript = name: text: writeTextFile { inherit name; executable = true; text = "#!/bin/sh\n" + text; };
  writeShellScriptBin = name: text:
    writeTextFile { inherit name; executable = true; destination = "/bin/${name}"; text = "#!/bin/sh\n" + text; }
    // { meta.mainProgram = name; };

  runCommandWith = name: env: buildCommand:
    let inputs = (env.nativeBuildInputs or [ ]) ++ (env.buildInputs or [ ]); in
    withPassthru
      (mkShDerivation (b.removeAttrs env [ "nativeBuildInputs" "buildInputs" "passthru" "meta" "preferLocalBuild" "allowSubstitutes" ] // {
        inherit name;
        PATH = lib.concatStringsSep ":" (b.map (p: "${p}/bin") inputs ++ [ "/usr/bin" "/bin" ]);
        script = buildCommand;
      }))
      (env.passthru or { });

  formatOf = generate: _: { type = lib.types.anything; generate = name: value: pkgs.writeText name (generate value); };

  pkgs = fakes // {
    inherit lib system;
    pkgs = pkgs;
    path = ../.;
    stdenv = {
      hostPlatform = platform;
      buildPlatform = platform;
      targetPlatform = platform;
      isLinux = true;
      isDarwin = false;
      shell = "/bin/sh";
      cc = fakePackage "gcc" { };
      mkDerivation = attrs:
        let a = if b.isFunction attrs then attrs { } else attrs; in
        fakePackage (a.pname or (lib.getName a.name)) { version = a.version or "0.0.0-stub"; passthru = a.passthru or { }; };
    };
    stdenvNoCC = pkgs.stdenv;
    hostPlatform = platform;
    buildPlatform = platform;
    targetPlatform = platform;
    linuxPackages = { kernel = fakePackage "linux" { version = "6.6.0-stub"; }; };
    linuxPackages_latest = { kernel = fakePackage "linux" { version = "6.9.0-stub"; }; };
    linuxPackages_6_6 = pkgs.linuxPackages;
    python3Packages = { };
    nodePackages = { };
    callPackage = fn: args:
      let f = if b.isFunction fn then fn else import fn; in
      f (b.intersectAttrs (b.functionArgs f) pkgs // args);
    inherit writeTextFile writeShellScript writeShellScriptBin runCommandWith;
    writeText = name: text: writeTextFile { inherit name text; };
    writeTextDir = path: text: writeTextFile { name = b.baseNameOf path; inherit text; destination = "/${path}"; };
    writeScript = name: text: writeTextFile { inherit name text; executable = true; };
    writeScriptBin = name: text: writeTextFile { inherit name text; executable = true; destination = "/bin/${name}"; };
    writeShellApplication = { name, text, runtimeInputs ? [ ], ... }:
      writeShellScriptBin name ("export PATH=${lib.makeBinPath runtimeInputs}:$PATH\n" + text);
    writers = {
      writeBash = pkgs.writeShellScript;
      writeBashBin = pkgs.writeShellScriptBin;
      writeJSON = name: value: pkgs.writeText name (b.toJSON value);
    };
    runCommand = name: env: runCommandWith name env;
    runCommandLocal = name: env: runCommandWith name env;
    runCommandNoCC = name: env: runCommandWith name env;
    runCommandCC = name: env: runCommandWith name env;
    symlinkJoin = { name, paths, ... }:
      runCommandWith name { inherit paths; } ''
        mkdir -p "$out"
        for p in $paths; do cp -rs "$p"/. "$out"/ 2>/dev/null || true; chmod -R u+w "$out"; done
      '';
    buildEnv = { name, paths, ... }: pkgs.symlinkJoin { inherit name paths; };
    fetchurl = { url ? "", name ? b.baseNameOf url, ... }: fakePackage "fetchurl-${name}" { };
    fetchzip = pkgs.fetchurl;
    fetchgit = { url ? "", ... }: fakePackage "fetchgit-${b.baseNameOf url}" { };
    fetchFromGitHub = { owner, repo, ... }: fakePackage "source-${owner}-${repo}" { };
    formats = {
      json = formatOf b.toJSON;
      yaml = formatOf b.toJSON;
      toml = formatOf (lib.generators.toKeyValue { });
      ini = formatOf (lib.generators.toINI { });
      keyValue = formatOf (lib.generators.toKeyValue { });
    };
  };
in
pkgs
