# Empty stand-in for nixpkgs' nixos/modules/installer/scan/not-detected.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
