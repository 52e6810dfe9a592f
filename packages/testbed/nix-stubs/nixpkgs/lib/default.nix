# Stub of nixpkgs `lib` for the NIO testbed: a useful subset of the real library, implemented on builtins only.
# It is meant to evaluate the project's flake offline; it does not reproduce NixOS option types or semantics.
let
  b = builtins;

  lib = trivial // attrsets // lists // strings // options // modules // misc // {
    inherit attrsets lists strings options modules types versions;
    inherit (b) toString isString isInt isBool isFloat isList isAttrs isPath
      typeOf seq deepSeq trace throw abort tryEval readFile pathExists readDir
      fromJSON toJSON hashString match split compareVersions splitVersion;
    sources = { cleanSource = x: x; cleanSourceWith = { src, ... }: src; sourceByRegex = src: _: src; };
    inherit (sources) cleanSource cleanSourceWith sourceByRegex;
    systems = {
      flakeExposed = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      elaborate = s: let sys = if b.isString s then s else s.system; in { system = sys; config = sys; isLinux = true; isx86_64 = sys == "x86_64-linux"; isAarch64 = sys == "aarch64-linux"; };
    };
    platforms = { linux = [ "x86_64-linux" "aarch64-linux" ]; all = lib.systems.flakeExposed; x86_64 = [ "x86_64-linux" ]; };
    licenses = b.listToAttrs (b.map (n: { name = n; value = { shortName = n; free = true; }; })
      [ "mit" "asl20" "gpl2Only" "gpl2Plus" "gpl3Only" "gpl3Plus" "lgpl21Plus" "bsd3" "unfree" "mpl20" "isc" ]);
    maintainers = { };
    nixosSystem = args: import ../nixos/eval-config.nix ({ inherit lib; } // args);
    evalModules = import ./modules.nix { inherit lib; };
    version = "24.05-stub";
    trivial = trivial // { version = "24.05-stub"; release = "24.05"; codeName = "Stub"; };
    inNixShell = false;
    fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    fakeSha256 = "0000000000000000000000000000000000000000000000000000";
    fileset = { toSource = { root, ... }: root; };
  };

  sources = lib.sources;

  trivial = {
    id = x: x;
    const = x: _: x;
    flip = f: a: c: f c a;
    pipe = b.foldl' (x: f: f x);
    fix = f: let x = f x; in x;
    concat = x: y: x ++ y;
    or = x: y: x || y;
    and = x: y: x && y;
    boolToString = v: if v then "true" else "false";
    mod = base: int: base - (int * (base / int));
    min = x: y: if x < y then x else y;
    max = x: y: if x > y then x else y;
    toFunction = v: if b.isFunction v then v else _: v;
    warn = msg: b.trace "warning: ${msg}";
    warnIf = cond: msg: if cond then lib.warn msg else x: x;
    warnIfNot = cond: msg: if cond then x: x else lib.warn msg;
    throwIf = cond: msg: if cond then b.throw msg else x: x;
    throwIfNot = cond: msg: if cond then x: x else b.throw msg;
    assertMsg = pred: msg: pred || b.throw msg;
    assertOneOf = name: val: xs: lib.assertMsg (b.elem val xs)
      "${name} must be one of ${b.toJSON xs}, but is: ${b.toJSON val}";
    importJSON = path: b.fromJSON (b.readFile path);
    importTOML = path: b.fromTOML (b.readFile path);
    functionArgs = f: if f ? __functor then f.__functionArgs or (lib.functionArgs (f.__functor f)) else b.functionArgs f;
    setFunctionArgs = f: args: { __functor = self: f; __functionArgs = args; };
    mirrorFunctionArgs = f: g: lib.setFunctionArgs g (lib.functionArgs f);
    isFunction = f: b.isFunction f || (f ? __functor && lib.isFunction (f.__functor f));
    versionOlder = v1: v2: b.compareVersions v2 v1 == 1;
    versionAtLeast = v1: v2: !(lib.versionOlder v1 v2);
    oldestSupportedRelease = 2305;
    isInOldestRelease = _: true;
  };

  attrsets = {
    inherit (b) attrNames attrValues getAttr hasAttr removeAttrs intersectAttrs catAttrs listToAttrs mapAttrs zipAttrsWith;
    nameValuePair = name: value: { inherit name value; };
    attrByPath = attrPath: default: set:
      if attrPath == [ ] then set
      else let n = b.head attrPath; in
        if set ? ${n} then lib.attrByPath (b.tail attrPath) default set.${n} else default;
    hasAttrByPath = attrPath: set:
      attrPath == [ ] || (let n = b.head attrPath; in b.isAttrs set && set ? ${n} && lib.hasAttrByPath (b.tail attrPath) set.${n});
    setAttrByPath = attrPath: value:
      if attrPath == [ ] then value else { ${b.head attrPath} = lib.setAttrByPath (b.tail attrPath) value; };
    getAttrFromPath = attrPath: set:
      lib.attrByPath attrPath (b.throw "cannot find attribute `${b.concatStringsSep "." attrPath}'") set;
    attrVals = nameList: set: b.map (x: set.${x}) nameList;
    filterAttrs = pred: set:
      b.listToAttrs (b.concatMap (name: let v = set.${name}; in if pred name v then [ { inherit name; value = v; } ] else [ ]) (b.attrNames set));
    filterAttrsRecursive = pred: set:
      b.listToAttrs (b.concatMap (name:
        let v = set.${name}; in
        if pred name v then [ { inherit name; value = if b.isAttrs v then lib.filterAttrsRecursive pred v else v; } ] else [ ])
        (b.attrNames set));
    foldAttrs = op: nul: list_of_attrs:
      b.foldl' (a: n: b.foldl' (acc: name: acc // { ${name} = op n.${name} (acc.${name} or nul); }) a (b.attrNames n)) { }
        (lib.reverseList list_of_attrs);
    foldlAttrs = f: init: set: b.foldl' (acc: name: f acc name set.${name}) init (b.attrNames set);
    collect = pred: attrs:
      if pred attrs then [ attrs ]
      else if b.isAttrs attrs then b.concatMap (lib.collect pred) (b.attrValues attrs)
      else [ ];
    mapAttrs' = f: set: b.listToAttrs (b.map (attr: f attr set.${attr}) (b.attrNames set));
    mapAttrsToList = f: attrs: b.map (name: f name attrs.${name}) (b.attrNames attrs);
    attrsToList = lib.mapAttrsToList lib.nameValuePair;
    concatMapAttrs = f: v: b.foldl' (acc: x: acc // x) { } (lib.mapAttrsToList f v);
    mapAttrsRecursive = f: set: lib.mapAttrsRecursiveCond (_: true) f set;
    mapAttrsRecursiveCond = cond: f: set:
      let
        recurse = path: b.mapAttrs (name: value:
          if b.isAttrs value && cond value then recurse (path ++ [ name ]) value else f (path ++ [ name ]) value);
      in recurse [ ] set;
    genAttrs = names: f: b.listToAttrs (b.map (n: { name = n; value = f n; }) names);
    isDerivation = value: value.type or null == "derivation";
    toDerivation = path: { type = "derivation"; name = b.baseNameOf (toString path); outPath = path; };
    optionalAttrs = cond: as: if cond then as else { };
    zipAttrsWithNames = names: f: sets: lib.genAttrs names (name: f name (b.catAttrs name sets));
    zipAttrs = b.zipAttrsWith (_: values: values);
    recursiveUpdateUntil = pred: lhs: rhs:
      let
        f = attrPath: b.zipAttrsWith (n: values:
          let here = attrPath ++ [ n ]; in
          if b.length values == 1 || pred here (b.elemAt values 1) (b.head values)
          then b.head values
          else f here values);
      in f [ ] [ rhs lhs ];
    recursiveUpdate = lhs: rhs:
      lib.recursiveUpdateUntil (_: lhs: rhs: !(b.isAttrs lhs && b.isAttrs rhs)) lhs rhs;
    getOutput = output: pkg: pkg.${output} or pkg;
    getBin = lib.getOutput "bin";
    getLib = lib.getOutput "lib";
    getDev = lib.getOutput "dev";
    getMan = lib.getOutput "man";
    getExe = pkg: "${lib.getBin pkg}/bin/${pkg.meta.mainProgram or (lib.getName pkg)}";
    getExe' = pkg: exe: "${lib.getBin pkg}/bin/${exe}";
    getName = x: if b.isString x then (b.parseDrvName x).name else x.pname or (b.parseDrvName x.name).name;
    getVersion = x: if b.isString x then (b.parseDrvName x).version else x.version or (b.parseDrvName x.name).version;
    dontRecurseIntoAttrs = x: x // { recurseForDerivations = false; };
    recurseIntoAttrs = x: x // { recurseForDerivations = true; };
    updateManyAttrsByPath = updates: value:
      b.foldl' (acc: u: lib.recursiveUpdate acc (lib.setAttrByPath u.path (u.update (lib.attrByPath u.path null acc)))) value updates;
  };

  lists = {
    inherit (b) head tail length elem elemAt filter map genList concatLists concatMap sort partition groupBy all any;
    foldl' = b.foldl';
    singleton = x: [ x ];
    forEach = xs: f: b.map f xs;
    foldr = op: nul: list:
      let len = b.length list; fold' = n: if n == len then nul else op (b.elemAt list n) (fold' (n + 1)); in fold' 0;
    foldl = op: nul: list: b.foldl' op nul list;
    imap0 = f: list: b.genList (n: f n (b.elemAt list n)) (b.length list);
    imap1 = f: list: b.genList (n: f (n + 1) (b.elemAt list n)) (b.length list);
    ifilter0 = ipred: input: b.map (i: b.elemAt input i) (b.filter (i: ipred i (b.elemAt input i)) (lib.range 0 (b.length input - 1)));
    flatten = x: if b.isList x then b.concatMap (y: lib.flatten y) x else [ x ];
    remove = e: b.filter (x: x != e);
    findFirst = pred: default: list: let found = b.filter pred list; in if found == [ ] then default else b.head found;
    findFirstIndex = pred: default: list:
      let idx = b.filter (i: pred (b.elemAt list i)) (lib.range 0 (b.length list - 1)); in if idx == [ ] then default else b.head idx;
    findSingle = pred: default: multiple: list:
      let found = b.filter pred list; len = b.length found; in
      if len == 0 then default else if len != 1 then multiple else b.head found;
    count = pred: b.foldl' (c: x: if pred x then c + 1 else c) 0;
    optional = cond: elem: if cond then [ elem ] else [ ];
    optionals = cond: elems: if cond then elems else [ ];
    toList = x: if b.isList x then x else [ x ];
    range = first: last: if first > last then [ ] else b.genList (n: first + n) (last - first + 1);
    replicate = n: elem: b.genList (_: elem) n;
    zipListsWith = f: fst: snd: b.genList (n: f (b.elemAt fst n) (b.elemAt snd n)) (lib.min (b.length fst) (b.length snd));
    zipLists = lib.zipListsWith (fst: snd: { inherit fst snd; });
    reverseList = xs: let l = b.length xs; in b.genList (n: b.elemAt xs (l - n - 1)) l;
    sortOn = f: list: b.sort (x: y: f x < f y) list;
    take = count: lib.sublist 0 count;
    drop = count: list: lib.sublist count (b.length list) list;
    sublist = start: count: list:
      let len = b.length list; in
      b.genList (n: b.elemAt list (n + start))
        (if start >= len then 0 else if start + count > len then len - start else count);
    last = list: assert list != [ ]; b.elemAt list (b.length list - 1);
    init = list: assert list != [ ]; lib.take (b.length list - 1) list;
    unique = b.foldl' (acc: e: if b.elem e acc then acc else acc ++ [ e ]) [ ];
    uniqueStrings = list: b.attrNames (b.listToAttrs (b.map (n: { name = n; value = null; }) list));
    intersectLists = e: b.filter (x: b.elem x e);
    subtractLists = e: b.filter (x: !(b.elem x e));
    mutuallyExclusive = a: b': b.length a == 0 || !(b.any (x: b.elem x b') a);
    naturalSort = b.sort (x: y: x < y);
    compareLists = cmp: a: c:
      if a == [ ] then (if c == [ ] then 0 else -1)
      else if c == [ ] then 1
      else let rel = cmp (b.head a) (b.head c); in if rel == 0 then lib.compareLists cmp (b.tail a) (b.tail c) else rel;
    listDfs = _: _: list: { result = list; };
    toposort = _: list: { result = list; };
    crossLists = f: foldl: b.foldl' (fs: args: b.concatMap (f: b.map f args) fs) [ f ] foldl;
    allUnique = list: b.length (lib.unique list) == b.length list;
  };

  strings = {
    inherit (b) stringLength substring replaceStrings concatStringsSep;
    concatStrings = b.concatStringsSep "";
    concatMapStrings = f: list: lib.concatStrings (b.map f list);
    concatImapStrings = f: list: lib.concatStrings (lib.imap1 f list);
    concatMapStringsSep = sep: f: list: b.concatStringsSep sep (b.map f list);
    concatImapStringsSep = sep: f: list: b.concatStringsSep sep (lib.imap1 f list);
    concatLines = list: lib.concatStrings (b.map (s: s + "\n") list);
    intersperse = separator: list:
      if list == [ ] || b.length list == 1 then list
      else b.tail (b.concatMap (x: [ separator x ]) list);
    makeSearchPath = subDir: paths: b.concatStringsSep ":" (b.map (path: path + "/" + subDir) (b.filter (x: x != null) paths));
    makeSearchPathOutput = _output: subDir: lib.makeSearchPath subDir;
    makeBinPath = lib.makeSearchPath "bin";
    makeLibraryPath = lib.makeSearchPath "lib";
    optionalString = cond: string: if cond then string else "";
    hasPrefix = pref: str: b.substring 0 (b.stringLength pref) str == pref;
    hasSuffix = suffix: content:
      let lenContent = b.stringLength content; lenSuffix = b.stringLength suffix; in
      lenContent >= lenSuffix && b.substring (lenContent - lenSuffix) lenContent content == suffix;
    hasInfix = infix: content: b.match ".*${lib.escapeRegex infix}.*" "${content}" != null;
    stringToCharacters = s: b.genList (p: b.substring p 1 s) (b.stringLength s);
    stringAsChars = f: s: lib.concatStrings (b.map f (lib.stringToCharacters s));
    splitString = sep: s: b.filter b.isString (b.split (lib.escapeRegex (toString sep)) (toString s));
    removePrefix = prefix: str:
      if lib.hasPrefix prefix str then b.substring (b.stringLength prefix) (b.stringLength str) str else str;
    removeSuffix = suffix: str:
      if lib.hasSuffix suffix str then b.substring 0 (b.stringLength str - b.stringLength suffix) str else str;
    lowerChars = lib.stringToCharacters "abcdefghijklmnopqrstuvwxyz";
    upperChars = lib.stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    toLower = b.replaceStrings lib.upperChars lib.lowerChars;
    toUpper = b.replaceStrings lib.lowerChars lib.upperChars;
    escape = list: b.replaceStrings list (b.map (c: "\\${c}") list);
    escapeRegex = lib.escape (lib.stringToCharacters "\\[{()^$?*+|.");
    escapeShellArg = arg: "'${b.replaceStrings [ "'" ] [ "'\\''" ] (toString arg)}'";
    escapeShellArgs = lib.concatMapStringsSep " " lib.escapeShellArg;
    escapeNixString = s: lib.escape [ "$" ] (b.toJSON s);
    escapeNixIdentifier = s: if b.match "[a-zA-Z_][a-zA-Z0-9_'-]*" s != null then s else lib.escapeNixString s;
    escapeXML = b.replaceStrings [ "\"" "'" "<" ">" "&" ] [ "&quot;" "&apos;" "&lt;" "&gt;" "&amp;" ];
    toInt = str:
      let m = b.match "[[:space:]]*(-?[0-9]+)[[:space:]]*" str; in
      if m == null then b.throw "toInt: Could not convert ${b.toJSON str} to int."
      else b.fromJSON (b.head m);
    toIntBase10 = lib.toInt;
    trim = s: let m = b.match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s; in if m == null then "" else b.head m;
    fileContents = file: lib.removeSuffix "\n" (b.readFile file);
    fixedWidthString = width: filler: str:
      let strw = b.stringLength str; in
      if strw >= width then str else lib.fixedWidthString width filler (filler + str);
    fixedWidthNumber = width: n: lib.fixedWidthString width "0" (toString n);
    versions = versions;
    isStorePath = x: b.isString x && lib.hasPrefix "${b.storeDir}/" x;
    isStringLike = x: b.isString x || b.isPath x || x ? outPath || x ? __toString;
    enableFeature = enable: feat: "--${if enable then "enable" else "disable"}-${feat}";
    withFeature = with_: feat: "--${if with_ then "with" else "without"}-${feat}";
    cmakeBool = n: v: "-D${n}:BOOL=${if v then "TRUE" else "FALSE"}";
    toShellVar = name: value: "${name}=${lib.escapeShellArg value}";
    toHexString = i:
      let
        digits = lib.stringToCharacters "0123456789ABCDEF";
        go = n: if n < 16 then b.elemAt digits n else go (n / 16) + b.elemAt digits (lib.mod n 16);
      in go i;
    charToInt = c: b.getAttr c asciiTable;
    readPathsFromFile = _: file: b.filter (l: l != "") (lib.splitString "\n" (b.readFile file));
  };

  asciiTable = b.listToAttrs (lib.imap0 (i: c: { name = c; value = i + 32; })
    (lib.stringToCharacters " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"));

  versions = {
    splitVersion = b.splitVersion;
    major = v: b.elemAt (b.splitVersion v) 0;
    minor = v: b.elemAt (b.splitVersion v) 1;
    patch = v: b.elemAt (b.splitVersion v) 2;
    majorMinor = v: b.concatStringsSep "." (lib.take 2 (b.splitVersion v));
  };

  # ---- option declarations (only defaults are used by the stub module system) ----
  options = {
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: lib.mkOption { default = false; example = true; description = "Whether to enable ${name}."; type = types.bool; };
    mkPackageOption = pkgs: name: extra:
      let path = if b.isList name then name else [ name ]; in
      lib.mkOption ({ type = types.package; default = lib.attrByPath (extra.default or path) null pkgs; } // b.removeAttrs extra [ "default" ]);
    mkPackageOptionMD = lib.mkPackageOption;
    mkSinkUndeclaredOptions = _: lib.mkOption { };
    isOption = v: b.isAttrs v && (v._type or null) == "option";
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalExample = lib.literalExpression;
    literalMD = text: { _type = "literalMD"; inherit text; };
    mdDoc = x: x;
    showOption = parts: b.concatStringsSep "." parts;
    showFiles = files: b.concatStringsSep ", " (b.map toString files);
    mergeEqualOption = _loc: defs: (b.head defs).value;
    getValues = b.map (x: x.value);
    getFiles = b.map (x: x.file);
  };

  # ---- definition properties, the part of the module system modules use directly ----
  modules = {
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkOptionDefault = lib.mkOverride 1500;
    mkDefault = lib.mkOverride 1000;
    mkImageMediaOverride = lib.mkOverride 60;
    mkForce = lib.mkOverride 50;
    mkVMOverride = lib.mkOverride 10;
    mkOrder = priority: content: { _type = "order"; inherit priority content; };
    mkBefore = lib.mkOrder 500;
    mkAfter = lib.mkOrder 1500;
    mkAliasDefinitions = option: lib.mkMerge [ ];
    mkAliasAndWrapDefinitions = _wrap: _option: lib.mkMerge [ ];
    fixMergeModules = _: _: b.throw "fixMergeModules is not supported by the testbed nixpkgs stub";
    mkRemovedOptionModule = _: _: { };
    mkRenamedOptionModule = _: _: { };
    mkRenamedOptionModuleWith = _: { };
    mkAliasOptionModule = _: _: { };
    mkMergedOptionModule = _: _: _: { };
    mkChangedOptionModule = _: _: _: { };
    mkDerivedConfig = _: f: f;
    defaultOverridePriority = 100;
    defaultPriority = 100;
    importApply = modulePath: staticArg: lib.setDefaultModuleLocation modulePath (import modulePath staticArg);
    setDefaultModuleLocation = file: m: { _file = file; imports = [ m ]; };
  };

  # ---- option types: descriptive stubs, no checking or type-directed merging ----
  mkType = name: extra: { _type = "option-type"; inherit name; description = name; check = _: true; } // extra;
  types = b.listToAttrs (b.map (n: { name = n; value = mkType n { }; }) [
    "str" "string" "lines" "commas" "envVar" "bool" "int" "float" "number" "path" "pathInStore" "package" "attrs"
    "anything" "unspecified" "raw" "nonEmptyStr" "singleLineStr" "port" "deferredModule" "passwdEntry" "shellPackage"
    "pkgs" "luaPackages" "optionType"
  ]) // {
    ints = b.listToAttrs (b.map (n: { name = n; value = mkType "ints.${n}" { }; })
      [ "unsigned" "positive" "u8" "u16" "u32" "s8" "s16" "s32" "u64" "s64" ]) // {
      between = lo: hi: mkType "ints.between" { inherit lo hi; };
    };
    numbers = { between = lo: hi: mkType "numbers.between" { inherit lo hi; }; nonnegative = mkType "numbers.nonnegative" { }; positive = mkType "numbers.positive" { }; };
    listOf = t: mkType "listOf" { elemType = t; };
    nonEmptyListOf = t: mkType "nonEmptyListOf" { elemType = t; };
    attrsOf = t: mkType "attrsOf" { elemType = t; };
    lazyAttrsOf = t: mkType "lazyAttrsOf" { elemType = t; };
    loaOf = t: mkType "loaOf" { elemType = t; };
    nullOr = t: mkType "nullOr" { elemType = t; };
    uniq = t: t;
    unique = _: t: t;
    functionTo = t: mkType "functionTo" { elemType = t; };
    enum = values: mkType "enum" { inherit values; };
    either = t1: t2: mkType "either" { inherit t1 t2; };
    oneOf = ts: mkType "oneOf" { inherit ts; };
    coercedTo = from: _f: to: mkType "coercedTo" { inherit from to; };
    addCheck = t: _check: t;
    strMatching = pattern: mkType "strMatching" { inherit pattern; };
    separatedString = sep: mkType "separatedString" { inherit sep; };
    submodule = m: mkType "submodule" { modules = lib.toList m; };
    submoduleWith = args: mkType "submodule" args;
    mkOptionType = attrs: mkType (attrs.name or "custom") attrs;
    isType = name: v: (v._type or null) == "option-type" && v.name == name;
  };

  misc = {
    inherit types versions;
    mkOptionType = types.mkOptionType;
    mkDerivation = _: b.throw "lib.mkDerivation does not exist (use pkgs.stdenv.mkDerivation)";
    callPackageWith = autoArgs: fn: args:
      let f = if b.isFunction fn then fn else import fn; in
      f (b.intersectAttrs (b.functionArgs f) autoArgs // args);
    makeOverridable = f: args: f args;
    teams = { };
    generators = import ./generators.nix { inherit lib; };
    # real nixpkgs exposes these; they are harmless here
    kernel = { yes = "y"; no = "n"; module = "m"; };
  };
in
lib
