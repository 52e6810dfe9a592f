# Empty stand-in for nixpkgs' nixos/modules/profiles/headless.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
