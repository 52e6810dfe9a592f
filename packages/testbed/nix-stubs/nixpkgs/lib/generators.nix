# Stub of lib.generators: enough to render simple configuration files.
{ lib }:
let
  b = builtins;
  mkValueStringDefault = _: v:
    if b.isBool v then lib.boolToString v
    else if b.isList v then b.concatStringsSep ", " (b.map (mkValueStringDefault { }) v)
    else toString v;
in
rec {
  inherit mkValueStringDefault;
  mkKeyValueDefault = { mkValueString ? mkValueStringDefault { } }: sep: k: v: "${k}${sep}${mkValueString v}";
  toKeyValue = { mkKeyValue ? mkKeyValueDefault { } "=", listsAsDuplicateKeys ? false, indent ? "" }: attrs:
    lib.concatStrings (lib.mapAttrsToList (k: v:
      if listsAsDuplicateKeys && b.isList v then lib.concatMapStrings (x: "${indent}${mkKeyValue k x}\n") v
      else "${indent}${mkKeyValue k v}\n") attrs);
  toINI = { mkSectionName ? (name: name), mkKeyValue ? mkKeyValueDefault { } "=", listsAsDuplicateKeys ? false }: attrsOfAttrs:
    b.concatStringsSep "\n" (lib.mapAttrsToList (section: values:
      "[${mkSectionName section}]\n" + toKeyValue { inherit mkKeyValue listsAsDuplicateKeys; } values) attrsOfAttrs);
  toINIWithGlobalSection = args: { globalSection ? { }, sections ? { } }:
    toKeyValue { } globalSection + "\n" + toINI args sections;
  toJSON = _: b.toJSON;
  toYAML = _: b.toJSON;
  toPretty = _: v: b.toJSON v;
  toLua = _: v: b.toJSON v;
  toDhall = _: v: b.toJSON v;
  toGitINI = toINI { };
}
