# A small, untyped module system for the testbed's nixpkgs stub.
#
# It does what the real one does structurally -- resolves `imports` (paths, functions, attribute sets), calls module
# functions with `{ config, options, lib, ... } // specialArgs`, merges every module's `config` lazily, honours
# mkIf / mkMerge / mkOverride (mkDefault, mkForce, ...) / mkOrder and option defaults -- but it has no option types:
# lists are concatenated, attribute sets merged recursively, equal values accepted, differing strings joined with
# newlines and other differing values reported as conflicts.
{ lib }:
{ modules
, specialArgs ? { }
, prefix ? [ ]
, args ? { }
, check ? true
, class ? null
, modulesPath ? null
}:
let
  b = builtins;
  outerModules = modules;
  outerSpecialArgs = specialArgs;
  showPath = path: b.concatStringsSep "." path;

  # ---------------------------------------------------------------- collecting modules

  fullModuleKeys = [ "_file" "key" "disabledModules" "imports" "options" "config" "meta" "_class" "freeformType" "require" ];
  shorthandOnlyKeys = [ "_file" "key" "disabledModules" "imports" "meta" "_class" "freeformType" "require" ];

  isPathLike = m: b.isPath m || (b.isString m && lib.hasPrefix "/" m);

  moduleArgs = args // specialArgs // {
    inherit lib config options specialArgs;
    _class = class;
    _prefix = prefix;
  };

  # Calls a module function. Like the real module system, arguments the function names are looked up in the
  # arguments above first and in `config._module.args` second (lazily, so `pkgs` may come from a module).
  applyModule = key: f:
    let
      requested = lib.functionArgs f;
      lookup = name: _:
        b.addErrorContext "while evaluating the module argument `${name}' in \"${key}\":"
          (moduleArgs.${name} or config._module.args.${name} or
            (b.throw "The module argument `${name}' is not available (pass it in specialArgs or set _module.args.${name})"));
    in
    f (moduleArgs // b.mapAttrs lookup requested);

  normalise = file: key: m:
    if isPathLike m then normalise (toString m) (toString m) (import m)
    else if lib.isFunction m then normalise file key (applyModule key m)
    else if b.isAttrs m then normaliseAttrs file key m
    else b.throw "The module `${key}' (in ${file}) is a ${b.typeOf m}; a module must be a path, a function or an attribute set";

  normaliseAttrs = file: key: m:
    let
      file' = toString (m._file or file);
      unsupported = b.filter (n: !(b.elem n fullModuleKeys)) (b.attrNames m);
    in
    if m ? config || m ? options then
      (if unsupported != [ ] then
        b.throw ("Module `${file'}' has an unsupported attribute `${b.head unsupported}'. This is caused by introducing "
          + "a top-level `config' or `options' attribute. Add configuration attributes immediately on the top level "
          + "instead, or move all of them (namely: ${b.concatStringsSep " " unsupported}) into the explicit `config' attribute.")
      else {
        file = file';
        key = toString (m.key or key);
        imports = m.imports or [ ];
        disabledModules = m.disabledModules or [ ];
        options = m.options or { };
        config = m.config or { };
      })
    else {
      file = file';
      key = toString (m.key or key);
      imports = m.imports or [ ];
      disabledModules = m.disabledModules or [ ];
      options = { };
      config = b.removeAttrs m shorthandOnlyKeys;
    };

  keyOf = anon: m:
    if isPathLike m then toString m
    else if b.isAttrs m && m ? key then toString m.key
    else anon;

  mkItem = parentFile: anon: m:
    let key = keyOf anon m; in
    { inherit key; n = normalise (if isPathLike m then toString m else parentFile) key m; };

  collected = b.genericClosure {
    startSet = lib.imap0 (i: mkItem "<evalModules argument>" "root-module-${toString i}") modules;
    operator = item: lib.imap0 (i: mkItem item.n.file "${item.key}:anon-${toString i}") item.n.imports;
  };

  disabledKeys = b.map
    (d:
      if b.isString d && !(lib.hasPrefix "/" d) && modulesPath != null then "${toString modulesPath}/${d}"
      else if b.isAttrs d && d ? key then toString d.key
      else toString d)
    (b.concatMap (item: item.n.disabledModules) collected);

  items = b.filter (item: !(b.elem item.key disabledKeys)) collected;

  # ---------------------------------------------------------------- options (declarations only give defaults)

  options = b.foldl'
    (acc: item: lib.recursiveUpdateUntil (_: l: r: lib.isOption l || lib.isOption r) acc item.n.options)
    { }
    items;

  optionDefaults = opts:
    if lib.isOption opts then (if opts ? default then lib.mkOptionDefault opts.default else lib.mkMerge [ ])
    else if b.isAttrs opts then b.mapAttrs (_: optionDefaults) opts
    else lib.mkMerge [ ];

  # ---------------------------------------------------------------- merging definitions

  definitions =
    b.map (item: { file = item.n.file; value = item.n.config; }) items
    ++ b.map (item: { file = "${item.n.file} (option declarations)"; value = optionDefaults item.n.options; })
      (b.filter (item: item.n.options != { }) items);

  # Flattens mkMerge and peels mkIf / mkOverride / mkOrder into item metadata without evaluating any condition,
  # so the attribute names of `config` are known without forcing `config` itself (as NixOS's pushDownProperties).
  pushDown = meta: v:
    let t = if b.isAttrs v then v._type or null else null; in
    if t == "merge" then b.concatMap (pushDown meta) v.contents
    else if t == "if" then pushDown (meta // { conds = meta.conds ++ [ v.condition ]; }) v.content
    else if t == "override" then pushDown (meta // { priority = if meta.priority == null then v.priority else meta.priority; }) v.content
    else if t == "order" then pushDown (meta // { order = if meta.order == null then v.priority else meta.order; }) v.content
    else [ (meta // { value = v; }) ];

  isBranchValue = v:
    b.isAttrs v && !(v ? _type) && (v.type or null) != "derivation" && !(v ? outPath) && !(v ? __toString) && !(v ? __functor);

  # `_module.args.<name>` values (pkgs, ...) are taken as they are, never merged or compared.
  isOpaque = path: b.length path >= 3 && b.elemAt path 0 == "_module" && b.elemAt path 1 == "args";

  checkCond = path: c:
    if b.isBool c then c
    else b.throw "mkIf called with a non-Boolean condition (a ${b.typeOf c}) in the definition of `${showPath path}'";

  prio = i: if i.priority == null then 100 else i.priority;
  ord = i: if i.order == null then 1000 else i.order;

  showValue = v:
    if b.isString v || b.isInt v || b.isBool v || b.isFloat v || v == null then b.toJSON v else "<${b.typeOf v}>";

  mkNode = path: nodeItems:
    let
      isBranch = nodeItems != [ ] && !(isOpaque path) && b.all (i: isBranchValue i.value) nodeItems;
      names = if isBranch then lib.uniqueStrings (b.concatMap (i: b.attrNames i.value) nodeItems) else [ ];
      child = name: mkNode (path ++ [ name ])
        (b.concatMap (i: if i.value ? ${name} then pushDown (b.removeAttrs i [ "value" ]) i.value.${name} else [ ]) nodeItems);
      active = b.filter (i: b.all (checkCond path) i.conds) nodeItems;
      best = b.foldl' (m: i: lib.min m (prio i)) 1000000 active;
      winners = b.sort (x: y: ord x < ord y) (b.filter (i: prio i == best) active);
      winnerValues = b.map (i: i.value) winners;
      # after mkIf/priorities the remaining definitions may all be attribute sets: merge those as a branch
      subNode = if !isBranch && winners != [ ] && !(isOpaque path) && b.all isBranchValue winnerValues
        then mkNode path (b.map (i: i // { conds = [ ]; }) winners) else null;
    in
    {
      inherit path isBranch names child subNode;
      defined = isBranch || active != [ ];
      leaf = mergeLeaf path winners winnerValues;
    };

  mergeLeaf = path: winners: values:
    let first = b.head values; in
    if winners == [ ] then b.throw "The option `${showPath path}' is used but not defined."
    else if b.length values == 1 || isOpaque path then first
    else if b.all b.isList values then b.concatLists values
    else if b.all (v: v == first) values then first
    else if b.all b.isString values then b.concatStringsSep "\n" values
    else b.throw ("The option `${showPath path}' has conflicting definition values:"
      + lib.concatMapStrings (i: "\n- In `${i.file}': ${showValue i.value}") winners);

  materialise = node:
    if node.isBranch then lib.genAttrs node.names (n: materialise (node.child n))
    else if node.subNode != null then materialise node.subNode
    else node.leaf;

  rootNode = mkNode [ ]
    (b.concatMap (d: pushDown { inherit (d) file; conds = [ ]; priority = null; order = null; } d.value) definitions);

  config = materialise rootNode;

  # ---------------------------------------------------------------- serialisation of the merged configuration

  # The forced, serialisable part of the merged config: strings, numbers, bools, null, lists and attribute sets;
  # derivations become their name, paths strings; functions and options nobody defined are left out.
  dumpNode = skip: depth: node:
    if node.isBranch then
      b.listToAttrs (b.concatMap
        (n:
          let c = node.child n; in
          if b.elem c.path skip || !c.defined || (!c.isBranch && c.subNode == null && b.isFunction c.leaf) then [ ] else [ { name = n; value = dumpNode skip (depth + 1) c; } ])
        node.names)
    else if node.subNode != null then dumpNode skip depth node.subNode
    else dumpValue depth node.leaf;

  dumpValue = depth: v:
    if depth > 100 then "<nested too deep>"
    else if b.isFunction v then null
    else if b.isPath v then toString v
    else if b.isList v then b.map (dumpValue (depth + 1)) (b.filter (x: !(b.isFunction x)) v)
    else if !(b.isAttrs v) then v
    else if (v.type or null) == "derivation" then v.name or "<derivation>"
    else if v ? outPath then toString v.outPath
    else if v ? _type then "<${toString v._type}>"
    else b.mapAttrs (_: dumpValue (depth + 1)) (lib.filterAttrs (_: x: !(b.isFunction x)) v);
in
{
  inherit config options;
  _module = { args = moduleArgs; };
  type = "configuration";
  _type = "configuration";
  class = class;
  # for the testbed: the merged config as plain data (paths to leave out, e.g. [ "system" "build" ])
  dumpConfig = skip: dumpNode skip 0 rootNode;
  moduleKeys = b.map (item: item.key) items;
  extendModules = ext:
    import ./modules.nix { inherit lib; } {
      modules = outerModules ++ (ext.modules or [ ]);
      specialArgs = outerSpecialArgs // (ext.specialArgs or { });
      prefix = ext.prefix or prefix;
      inherit args check class modulesPath;
    };
}
