# Empty stand-in for nixpkgs' nixos/modules/profiles/all-hardware.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
