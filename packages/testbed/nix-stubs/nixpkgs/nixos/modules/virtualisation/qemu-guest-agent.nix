# Empty stand-in for nixpkgs' nixos/modules/virtualisation/qemu-guest-agent.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
