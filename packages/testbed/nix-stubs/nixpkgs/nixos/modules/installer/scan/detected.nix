# Empty stand-in for nixpkgs' nixos/modules/installer/scan/detected.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
