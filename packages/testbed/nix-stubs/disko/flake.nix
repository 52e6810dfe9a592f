{
  description = "NIO testbed stub of disko: accepts `disko.devices` and partitions nothing";

  outputs = { self }:
    let
      module = { lib, pkgs, config, ... }: {
        _file = "${toString ./flake.nix}#nixosModules.disko";
        options.disko = {
          devices = lib.mkOption { default = { }; description = "Disk layout (ignored by the testbed stub)."; };
          enableConfig = lib.mkOption { default = true; };
          checkScripts = lib.mkOption { default = false; };
          rootMountPoint = lib.mkOption { default = "/mnt"; };
          memSize = lib.mkOption { default = 1024; };
          extraRootModules = lib.mkOption { default = [ ]; };
          imageBuilder = lib.mkOption { default = { }; };
          tests = lib.mkOption { default = { }; };
        };
        config.system.build = {
          # forces the disk layout to be evaluated when the scripts are built, like the real module's scripts
          diskoScript = pkgs.writeShellScript "disko" ''
            echo "testbed disko stub; layout: ${builtins.toJSON (builtins.attrNames (config.disko.devices.disk or { }))}"
          '';
          formatScript = config.system.build.diskoScript;
          mountScript = config.system.build.diskoScript;
          destroyScript = config.system.build.diskoScript;
          disko = config.system.build.diskoScript;
        };
      };
      forSystem = system: {
        disko = builtins.derivation {
          name = "disko-stub";
          inherit system;
          builder = "/bin/sh";
          args = [ "-c" "echo '#!/bin/sh' > $out" ];
        };
      };
    in
    {
      nixosModules = { disko = module; default = module; };
      packages = { x86_64-linux = forSystem "x86_64-linux" // { default = (forSystem "x86_64-linux").disko; }; };
    };
}
