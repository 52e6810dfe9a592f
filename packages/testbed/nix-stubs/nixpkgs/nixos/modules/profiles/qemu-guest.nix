# Empty stand-in for nixpkgs' nixos/modules/profiles/qemu-guest.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
