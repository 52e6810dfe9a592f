# Empty stand-in for nixpkgs' nixos/modules/virtualisation/qemu-vm.nix (the testbed stubs have no NixOS modules).
{ ... }: { }
