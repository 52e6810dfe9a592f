# Empty stand-in for nixpkgs' nixos/modules/profiles/hardened.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
