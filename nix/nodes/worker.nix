# A worker node: k3s agent joining through https://<vip or first control-plane ip>:6443 with the cluster join token.
{ nico, ... }:
let
  inherit (nico) cluster node serverUrl;
in
{
  services.k3s = {
    enable = true;
    role = "agent";
    serverAddr = serverUrl;
    # a path string, never a Nix path: the token is a root-only host file NIO writes, it never enters the store
    tokenFile = "/var/lib/nico/join-token";
    extraFlags = [
      "--node-ip=${node.ip}"
      "--flannel-iface=${cluster.network.interface}"
    ];
  };

  networking.firewall = {
    # (22 for SSH: common.nix) 10250 kubelet, 30000-32767 NodePort services
    allowedTCPPorts = [ 10250 ];
    allowedTCPPortRanges = [ { from = 30000; to = 32767; } ];
    # flannel VXLAN
    allowedUDPPorts = [ 8472 ];
  };
}
