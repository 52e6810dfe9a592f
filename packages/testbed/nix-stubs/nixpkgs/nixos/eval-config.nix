# `lib.nixosSystem` of the testbed's nixpkgs stub: evaluates the modules with the stub module system and gives
# `config.system.build.toplevel`, a real derivation whose output holds the merged configuration as JSON.
{ lib
, modules
, system ? null
, pkgs ? null
, specialArgs ? { }
, extraModules ? [ ]
, baseModules ? [ ]
, extraArgs ? { }
, check ? true
, prefix ? [ ]
, modulesLocation ? null
}:
let
  b = builtins;
  modulesPath = ./modules;

  eval = lib.evalModules {
    modules = [ ./baseline.nix toplevelModule ] ++ baseModules ++ modules ++ extraModules;
    specialArgs = { inherit modulesPath; } // specialArgs;
    args = extraArgs // { pkgs = finalPkgs; };
    inherit prefix check modulesPath;
    class = "nixos";
  };

  config = eval.config;

  platformOf = p: if b.isString p then p else p.system or "x86_64-linux";
  hostSystem =
    if system != null then platformOf system
    else platformOf (config.nixpkgs.hostPlatform or config.nixpkgs.system or "x86_64-linux");

  finalPkgs = if pkgs != null then pkgs else import ../pkgs { system = hostSystem; inherit lib; };

  hostName = let h = config.networking.hostName or null; in if b.isString h && h != "" then h else "nixos";

  checked =
    let
      failed = b.map (a: a.message or "(assertion without message)")
        (b.filter (a: !(a.assertion or true)) (config.assertions or [ ]));
      warned = b.foldl' (acc: w: b.trace "warning: ${w}" acc) true (config.warnings or [ ]);
    in
    if failed != [ ] then b.throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
    else warned;

  configJson = b.toJSON (eval.dumpConfig [ [ "system" "build" ] [ "_module" ] ]);

  # Forcing the toplevel (even `nix flake check`, which only looks at it) serialises, and so evaluates, the config.
  toplevel = assert checked; b.seq configJson (b.derivation {
    name = "nixos-system-${hostName}";
    system = hostSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    inherit hostName configJson;
    nixosVersion = lib.trivial.version;
    passAsFile = [ "configJson" ];
    args = [
      "-c"
      ''
        set -e
        mkdir -p "$out/bin"
        cp "$configJsonPath" "$out/config.json"
        printf '%s\n' "$hostName" > "$out/hostname"
        printf '%s\n' "$nixosVersion" > "$out/nixos-version"
        printf '%s' "$system" > "$out/system"
        printf '#!/bin/sh\necho "switch-to-configuration (testbed stub) $1 %s"\n' "$out" > "$out/bin/switch-to-configuration"
        chmod 755 "$out/bin/switch-to-configuration"
      ''
    ];
  });

  toplevelModule = {
    _file = toString ./eval-config.nix;
    config.system.build.toplevel = toplevel;
  };
in
eval // {
  pkgs = finalPkgs;
  inherit config;
  options = eval.options;
  type = "configuration";
  _type = "configuration";
  extendModules = args: lib.nixosSystem {
    inherit system pkgs specialArgs extraModules baseModules extraArgs prefix;
    modules = modules ++ (args.modules or [ ]);
  };
}
