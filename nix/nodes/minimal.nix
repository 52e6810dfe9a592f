# `minimal`: what NICO applies to a machine when it leaves the cluster (NixosConfiguration onRemoveFlake "#minimal"),
# one configuration for every node. It leaves the machine reachable and clean for reuse:
#
# - k3s and keepalived are not enabled, so switching to it stops them (and keepalived releases the VIP);
# - the activation script `nico-cleanup` removes what k3s left (pods, mounts, /var/lib/rancher/k3s, /etc/rancher, the
#   kubelet and CNI state) and the join token; it runs after switch-to-configuration has stopped k3s, and again on
#   every boot, so it is idempotent;
# - SSH stays as in every configuration (common.nix: root with cluster.authorizedKeys, port 22 open);
# - the address: `minimal` cannot know a node's address from cluster.nix (it is not built per node), so every cluster
#   node records its identity in /var/lib/nico/node.env (common.nix) and the service `nico-keep-address` puts the
#   host name, the static address and the default route back from that file. DHCP stays on as a fallback for a
#   machine that never got that far. Network changes live in services, not in activation scripts.
{ lib, pkgs, nico, ... }:
let
  iface = nico.cluster.network.interface;
  # systemd's name for the device unit of the interface (what utils.escapeSystemdPath gives for interface names)
  deviceUnit = "sys-subsystem-net-devices-${lib.replaceStrings [ "-" ] [ "\\x2d" ] iface}.device";
in
{
  # The host name is set by nico-keep-address; an empty hostName makes NixOS leave the current one alone.
  networking.hostName = "";
  networking.useDHCP = lib.mkDefault true;

  system.activationScripts.nico-cleanup = {
    deps = [ "specialfs" ];
    text = ''
      nico_cleanup() {
        local cg pid exe m
        # k3s stops with KillMode=process: its containerd shims and the pods' containers may still run
        for cg in /sys/fs/cgroup/kubepods /sys/fs/cgroup/kubepods.slice /sys/fs/cgroup/system.slice/k3s.service; do
          if [ -w "$cg/cgroup.kill" ]; then echo 1 > "$cg/cgroup.kill" || true; fi
        done
        for pid in /proc/[0-9]*; do
          exe=$(readlink "$pid/exe" 2>/dev/null) || continue
          case "$exe" in
            /var/lib/rancher/k3s/*) kill -9 "''${pid#/proc/}" 2>/dev/null || true ;;
          esac
        done
        # what k3s and its pods left mounted, deepest first
        while read -r _ m _; do
          case "$m" in
            /run/k3s | /run/k3s/* | /var/lib/rancher/k3s | /var/lib/rancher/k3s/* | /var/lib/kubelet | /var/lib/kubelet/*)
              echo "$m" ;;
          esac
        done < /proc/self/mounts | sort -r -u | while read -r m; do umount -l "$m" 2>/dev/null || true; done
        rm -rf /var/lib/rancher/k3s /etc/rancher /var/lib/kubelet /var/lib/cni /run/k3s /run/flannel
        rm -f /var/lib/nico/join-token
      }
      nico_cleanup
    '';
  };

  systemd.services.nico-keep-address = {
    description = "Keep the host name and static address this machine had as a NICO cluster node";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-pre.target" ];
    after = [ "network-pre.target" deviceUnit ];
    bindsTo = [ deviceUnit ];
    before = [ "network.target" ];
    path = [ pkgs.iproute2 ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
    };
    script = ''
      f=/var/lib/nico/node.env
      if [ ! -r "$f" ]; then
        echo "$f does not exist: the address is left to DHCP"
        exit 0
      fi
      . "$f"
      echo "$NICO_NODE_NAME" > /proc/sys/kernel/hostname
      ip link set dev "$NICO_INTERFACE" up
      ip addr replace "$NICO_NODE_IP/$NICO_PREFIX_LENGTH" dev "$NICO_INTERFACE"
      if [ -n "$NICO_GATEWAY" ]; then
        ip route replace default via "$NICO_GATEWAY" dev "$NICO_INTERFACE"
      fi
    '';
  };

  # k3s-killall.sh's network part: the CNI interfaces and the KUBE-/CNI-/flannel iptables rules
  systemd.services.nico-k3s-network-cleanup = {
    description = "Remove the network interfaces and iptables rules k3s left behind";
    wantedBy = [ "multi-user.target" ];
    after = [ "firewall.service" "nico-keep-address.service" ];
    path = [ pkgs.iproute2 pkgs.iptables pkgs.gnugrep ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
    };
    script = ''
      for link in cni0 flannel.1 flannel-v6.1 flannel-wg flannel-wg-v6 kube-ipvs0; do
        ip link delete "$link" 2>/dev/null || true
      done
      for t in iptables ip6tables; do
        if "$t-save" | grep -qE 'KUBE-|CNI-|FLANNEL|flannel'; then
          "$t-save" | grep -vE 'KUBE-|CNI-|FLANNEL|flannel' | "$t-restore" || true
        fi
      done
    '';
  };
}
