# Defaults (priority of option defaults, i.e. mkOptionDefault) for NixOS options that modules commonly read, so that
# `config.services.k3s.enable` and the like evaluate as in NixOS even when no module set them. Not exhaustive:
# reading an option that nobody defined and that is not listed here fails with "attribute ... missing".
{ lib, pkgs, ... }:
let
  d = lib.mkOptionDefault;
  service = extra: { enable = d false; } // extra;
in
{
  _file = toString ./baseline.nix;
  config = {
    networking = {
      hostName = d "nixos";
      domain = d null;
      hostId = d null;
      useDHCP = d true;
      useNetworkd = d false;
      nameservers = d [ ];
      search = d [ ];
      defaultGateway = d null;
      defaultGateway6 = d null;
      interfaces = d { };
      extraHosts = d "";
      hosts = d { };
      enableIPv6 = d true;
      firewall = {
        enable = d true;
        allowPing = d true;
        allowedTCPPorts = d [ ];
        allowedUDPPorts = d [ ];
        allowedTCPPortRanges = d [ ];
        allowedUDPPortRanges = d [ ];
        trustedInterfaces = d [ ];
        extraCommands = d "";
        extraStopCommands = d "";
        extraInputRules = d "";
        interfaces = d { };
        checkReversePath = d true;
        logRefusedConnections = d true;
      };
      nftables.enable = d false;
      networkmanager.enable = d false;
      wireless.enable = d false;
    };
    services = {
      openssh = service {
        package = d pkgs.openssh;
        ports = d [ 22 ];
        openFirewall = d true;
        settings = { PermitRootLogin = d "prohibit-password"; PasswordAuthentication = d true; };
        hostKeys = d [ ];
        extraConfig = d "";
      };
      k3s = service {
        role = d "server";
        serverAddr = d "";
        token = d "";
        tokenFile = d null;
        clusterInit = d false;
        extraFlags = d [ ];
        disableAgent = d false;
        environmentFile = d null;
        configPath = d null;
        gracefulNodeShutdown.enable = d false;
        manifests = d { };
        package = d pkgs.k3s;
      };
      rke2 = service { };
      keepalived = service {
        package = d pkgs.keepalived;
        vrrpInstances = d { };
        vrrpScripts = d { };
        extraConfig = d "";
        extraGlobalDefs = d "";
        openFirewall = d false;
        enableScriptSecurity = d false;
        snmp.enable = d false;
      };
      haproxy = service { config = d null; };
      etcd = service { };
      timesyncd = service { };
      chrony = service { };
      ntp = service { };
      qemuGuest = service { };
      fstrim = service { };
      resolved = service { };
      fail2ban = service { };
      prometheus.exporters.node = service { };
      journald.extraConfig = d "";
      logrotate = service { };
      getty.autologinUser = d null;
      udev.extraRules = d "";
      xserver = service { };
    };
    users = {
      mutableUsers = d true;
      users = {
        root = {
          home = d "/root";
          uid = d 0;
          openssh.authorizedKeys = { keys = d [ ]; keyFiles = d [ ]; };
        };
      };
      groups = d { };
    };
    security.sudo = { enable = d true; wheelNeedsPassword = d true; };
    environment = {
      systemPackages = d [ ];
      etc = d { };
      variables = d { };
      sessionVariables = d { };
      shellAliases = d { };
    };
    systemd = {
      services = d { };
      timers = d { };
      sockets = d { };
      targets = d { };
      paths = d { };
      mounts = d [ ];
      tmpfiles.rules = d [ ];
      network = { enable = d false; networks = d { }; };
    };
    boot = {
      loader = {
        grub = { enable = d true; devices = d [ ]; device = d ""; efiSupport = d false; efiInstallAsRemovable = d false; };
        systemd-boot.enable = d false;
        efi = { canTouchEfiVariables = d false; efiSysMountPoint = d "/boot"; };
      };
      kernelModules = d [ ];
      kernelParams = d [ ];
      extraModulePackages = d [ ];
      blacklistedKernelModules = d [ ];
      kernel.sysctl = d { };
      initrd = { availableKernelModules = d [ ]; kernelModules = d [ ]; };
      supportedFilesystems = d [ ];
      tmp.cleanOnBoot = d false;
    };
    fileSystems = d { };
    swapDevices = d [ ];
    zramSwap.enable = d false;
    hardware.enableRedistributableFirmware = d false;
    virtualisation = { docker.enable = d false; podman.enable = d false; containerd.enable = d false; };
    nix = {
      enable = d true;
      settings = d { };
      gc.automatic = d false;
      extraOptions = d "";
    };
    time.timeZone = d null;
    i18n.defaultLocale = d "en_US.UTF-8";
    console.keyMap = d "us";
    programs = { bash.enable = d true; zsh.enable = d false; ssh.startAgent = d false; };
    documentation = { enable = d true; nixos.enable = d true; man.enable = d true; };
    system = {
      stateVersion = d "24.05";
      activationScripts = d { };
      autoUpgrade.enable = d false;
      nixos = { label = d "24.05-stub"; version = d "24.05-stub"; };
    };
    assertions = d [ ];
    warnings = d [ ];
  };
}
