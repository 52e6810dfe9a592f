{
  description = "NIO testbed stub of nixpkgs: a lib subset, an untyped nixosSystem and fake packages (offline, no NixOS modules)";

  outputs = { self }:
    let
      lib = import ./lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      pkgsFor = system: import ./pkgs { inherit lib system; };
      isDerivation = v: (v.type or null) == "derivation";
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs systems pkgsFor;
      # only the plain fake packages, so `nix flake show/check` of this flake stay meaningful
      packages = lib.genAttrs systems (system: lib.filterAttrs (n: v: isDerivation v && n != "pkgs") (pkgsFor system));
      nixosModules = {
        notDetected = import ./nixos/modules/installer/scan/not-detected.nix;
        qemuGuest = import ./nixos/modules/profiles/qemu-guest.nix;
      };
      # `nixpkgs.outPath + "/nixos/modules"` works as with the real flake
    };
}
