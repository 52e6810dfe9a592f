{
  description = "NICO cluster flake: one NixOS k3s node per entry of cluster.nix (keepalived HA control plane, workers, disko layout) plus #minimal for cleanup";

  inputs = {
    # A NixOS release branch; the exact commit is pinned in flake.lock (update with `nix flake update`).
    nixpkgs.url = "github:nixos/nixpkgs/nixos-25.05";
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, disko }: {
    # cluster.nix is plain data rendered by NICO (see README.md for the contract). generator.nix validates it and
    # refuses to evaluate (with a message naming the offending node) instead of silently overriding a node.
    nixosConfigurations = import ./nodes/generator.nix {
      inherit nixpkgs disko;
      cluster = import ./cluster.nix;
    };
  };
}
