# Empty stand-in for nixpkgs' nixos/modules/installer/cd-dvd/installation-cd-minimal.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
