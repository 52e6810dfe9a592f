# Empty stand-in for nixpkgs' nixos/modules/profiles/minimal.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
