# Empty stand-in for nixpkgs' nixos/modules/profiles/base.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
