# A control-plane node: k3s server with embedded etcd, and (when cluster.nix has a VIP) keepalived holding the VIP.
#
# Index 0 (the first entry of controlPlane) bootstraps the cluster with --cluster-init while cluster.nix says
# `initialized = false`; every other server, and the first one once NICO has set `initialized = true`, joins through
# https://<vip or first control-plane ip>:6443. So no node can ever bootstrap a second cluster.
{ lib, nico, ... }:
let
  inherit (nico) cluster node serverUrl;
  net = cluster.network;
  hasVip = cluster.vip != null;
  bootstrap = node.index == 0 && !cluster.initialized;
  peers = b.map (n: n.ip) (b.filter (n: n.name != node.name) cluster.controlPlane);
  b = builtins;
  # keepalived's PASS authentication takes at most 8 characters. It is derived from the cluster name, so it is no
  # secret: it only keeps two clusters that share an L2 segment and a virtual router id apart.
  vrrpPassword = b.substring 0 8 (b.hashString "sha256" "nico-vrrp:${cluster.name}");
in
{
  services.k3s = {
    enable = true;
    role = "server";
    clusterInit = bootstrap;
    serverAddr = lib.optionalString (!bootstrap) serverUrl;
    # a path string, never a Nix path: the token is a root-only host file NIO writes, it never enters the store
    tokenFile = "/var/lib/nico/join-token";
    extraFlags = [
      "--node-ip=${node.ip}"
      "--flannel-iface=${net.interface}"
      # the admin kubeconfig /etc/rancher/k3s/k3s.yaml stays root-only
      "--write-kubeconfig-mode=0600"
    ] ++ lib.optional hasVip "--tls-san=${cluster.vip}";
  };

  services.keepalived = lib.mkIf hasVip {
    enable = true;
    vrrpInstances.nico_vip = {
      interface = net.interface;
      state = if node.index == 0 then "MASTER" else "BACKUP";
      priority = lib.max 1 (150 - node.index);
      virtualRouterId = net.virtualRouterId;
      virtualIps = [ { addr = "${cluster.vip}/${toString net.prefixLength}"; } ];
      # unicast VRRP between the control-plane nodes: works where multicast is filtered
      unicastSrcIp = node.ip;
      unicastPeers = peers;
      extraConfig = ''
        authentication {
          auth_type PASS
          auth_pass ${vrrpPassword}
        }
      '';
    };
  };

  networking.firewall = {
    # (22 for SSH: common.nix) 6443 Kubernetes API, 2379-2380 etcd, 10250-10259 kubelet, controller-manager, scheduler
    allowedTCPPorts = [ 6443 ];
    allowedTCPPortRanges = [
      { from = 2379; to = 2380; }
      { from = 10250; to = 10259; }
    ];
    # flannel VXLAN
    allowedUDPPorts = [ 8472 ];
    # VRRP is IP protocol 112 (neither TCP nor UDP), so it needs its own rule
    extraCommands = lib.mkIf hasVip ''
      ip46tables -A nixos-fw -p 112 -j nixos-fw-accept
    '';
  };

  # root's kubectl (the k3s package provides it) uses the admin kubeconfig
  environment.variables.KUBECONFIG = "/etc/rancher/k3s/k3s.yaml";
  systemd.tmpfiles.rules = [ "d /etc/rancher/k3s 0700 root root -" ];
}
