# Shared by every configuration of the flake, the cluster nodes and `minimal`: root SSH access with
# cluster.authorizedKeys, flakes for NIO's `nixos-rebuild --flake`, DNS, no swap, the boot loader for the disko layout.
# The node-specific part (host name, static address, the Kubernetes kernel settings and the node identity file that
# `minimal` uses to keep the address) applies to cluster nodes only: `nico.node` is null in `minimal`.
{ lib, modulesPath, nico, ... }:
let
  inherit (nico) cluster node;
  net = cluster.network;
  isIPv6 = ip: lib.hasInfix ":" ip;

  everyConfiguration = {
    nixpkgs.hostPlatform = lib.mkDefault "x86_64-linux";
    system.stateVersion = "25.05";
    # NIO applies changes with `nixos-rebuild switch --flake` on the machine itself
    nix.settings.experimental-features = [ "nix-command" "flakes" ];

    # disko's layout has a BIOS boot partition and an ESP; disko adds the disk to boot.loader.grub.devices
    boot.loader.grub = {
      enable = true;
      efiSupport = true;
      efiInstallAsRemovable = true;
    };
    boot.initrd.availableKernelModules = [ "ahci" "xhci_pci" "virtio_pci" "virtio_scsi" "virtio_blk" "sd_mod" "sr_mod" "nvme" "usb_storage" ];

    services.openssh = {
      enable = true;
      openFirewall = true;
      settings = {
        PermitRootLogin = "prohibit-password";
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
      };
    };
    # /etc/ssh/authorized_keys.d/root; keys already in /root/.ssh/authorized_keys keep working as well
    users.users.root.openssh.authorizedKeys.keys = cluster.authorizedKeys;

    networking.nameservers = lib.mkIf (net.nameservers != [ ]) net.nameservers;
    networking.firewall = {
      enable = true;
      allowedTCPPorts = [ 22 ];
    };

    # Kubernetes (the kubelet) wants no swap
    swapDevices = lib.mkForce [ ];
    zramSwap.enable = lib.mkForce false;
  };

  clusterNode = {
    networking.hostName = node.name;
    networking.useDHCP = false;
    networking.interfaces.${net.interface} =
      let address = [ { address = node.ip; prefixLength = net.prefixLength; } ]; in
      if isIPv6 node.ip then { ipv6.addresses = address; } else { ipv4.addresses = address; };
    networking.defaultGateway = lib.mkIf (net.gateway != null && !(isIPv6 net.gateway)) {
      address = net.gateway;
      interface = net.interface;
    };
    networking.defaultGateway6 = lib.mkIf (net.gateway != null && isIPv6 net.gateway) {
      address = net.gateway;
      interface = net.interface;
    };

    # container networking (flannel on a bridge) and overlayfs for containerd
    boot.kernelModules = [ "br_netfilter" "overlay" ];
    boot.kernel.sysctl = {
      "net.ipv4.ip_forward" = 1;
      "net.ipv6.conf.all.forwarding" = 1;
      "net.bridge.bridge-nf-call-iptables" = 1;
      "net.bridge.bridge-nf-call-ip6tables" = 1;
    };

    # Who this machine is, kept outside the Nix store and outside /etc so that `minimal` (one configuration for
    # every node) can give the machine back its name and address after k3s is gone. Plain data, no secret.
    system.activationScripts.nico-node-identity = {
      deps = [ ];
      text =
        let
          env = lib.concatStrings (lib.mapAttrsToList (k: v: "${k}=${lib.escapeShellArg v}\n") {
            NICO_CLUSTER = cluster.name;
            NICO_NODE_NAME = node.name;
            NICO_NODE_ROLE = node.role;
            NICO_NODE_IP = node.ip;
            NICO_PREFIX_LENGTH = toString net.prefixLength;
            NICO_INTERFACE = net.interface;
            NICO_GATEWAY = if net.gateway == null then "" else net.gateway;
          });
        in
        ''
          mkdir -p /var/lib/nico
          chmod 0755 /var/lib/nico
          printf '%s' ${lib.escapeShellArg env} > /var/lib/nico/node.env.tmp
          chmod 0644 /var/lib/nico/node.env.tmp
          mv -f /var/lib/nico/node.env.tmp /var/lib/nico/node.env
        '';
    };
  };
in
{
  imports = [ (modulesPath + "/installer/scan/not-detected.nix") ];
  config = lib.mkMerge ([ everyConfiguration ] ++ lib.optional (node != null) clusterNode);
}
