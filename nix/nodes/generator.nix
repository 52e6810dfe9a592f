# Turns cluster.nix into `nixosConfigurations`: one NixOS system per control-plane node and worker, plus `minimal`.
#
# cluster.nix is checked first. Anything that would make a node ambiguous or silently overridden (a node in both
# lists, a duplicate name, a node called `minimal`, two nodes with one address) or that the modules could not use is
# an evaluation error naming the field and the node, raised as soon as the attribute set is looked at (so
# `nix flake show` and `nix eval .#nixosConfigurations --apply builtins.attrNames` fail with it too).
{ nixpkgs, disko, cluster }:
let
  lib = nixpkgs.lib;
  b = builtins;

  # ------------------------------------------------------------------ checks

  dnsLabel = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
  octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
  isIPv4 = s: b.isString s && b.match "${octet}\\.${octet}\\.${octet}\\.${octet}" s != null;
  # loose on purpose (NICO validates addresses exactly); enough to keep anything but an address literal out
  isIPv6 = s: b.isString s && b.stringLength s <= 45 && lib.hasInfix ":" s && b.match "[0-9a-fA-F:.]+" s != null;
  isIP = s: isIPv4 s || isIPv6 s;
  show = v:
    if b.isString v || b.isInt v || b.isBool v || v == null then b.toJSON v
    else "a value of type ${b.typeOf v}";

  required = [ "name" "vip" "initialized" "network" "controlPlane" "workers" "authorizedKeys" ];
  missing = b.filter (k: !(cluster ? ${k})) required;
  net = cluster.network or { };
  netRequired = [ "interface" "prefixLength" "gateway" "nameservers" "virtualRouterId" ];

  nodeErrors = list: nodes:
    if !(b.isList nodes) then [ "${list} must be a list of { name, ip } (got ${show nodes})" ]
    else b.concatLists (lib.imap0
      (i: n:
        let where = "${list}[${toString i}]"; in
        if !(isNode n) then [ "${where} must be { name = \"...\"; ip = \"...\"; }" ]
        else
          lib.optional (!(b.isString n.name && b.match dnsLabel n.name != null))
            "${where}: node name ${show n.name} is not a DNS label (lower-case letters, digits, '-', at most 63)"
          ++ lib.optional (!(isIP n.ip)) "${where}: node \"${toString n.name}\" has ip ${show n.ip}, not an IPv4 or IPv6 address"
          ++ lib.optional (n.name == "minimal")
            "${where}: the node name \"minimal\" is reserved for the cleanup configuration (nixosConfigurations.minimal)")
      nodes);

  isNode = n: b.isAttrs n && n ? name && n ? ip;
  names = list: if b.isList list then b.map (n: n.name) (b.filter isNode list) else [ ];
  cpNames = names (cluster.controlPlane or [ ]);
  workerNames = names (cluster.workers or [ ]);
  duplicatesIn = xs: lib.unique (b.filter (x: lib.count (y: y == x) xs > 1) xs);

  nameErrors =
    b.map (n: "node \"${n}\" is listed in both controlPlane and workers; a machine can only have one role")
      (lib.unique (b.filter (n: b.elem n workerNames) cpNames))
    ++ b.map (n: "node \"${n}\" is listed more than once in controlPlane") (duplicatesIn cpNames)
    ++ b.map (n: "node \"${n}\" is listed more than once in workers") (duplicatesIn workerNames);

  allNodes = b.filter isNode ((if b.isList (cluster.controlPlane or null) then cluster.controlPlane else [ ])
    ++ (if b.isList (cluster.workers or null) then cluster.workers else [ ]));
  ips = b.map (n: n.ip) allNodes;
  ipErrors =
    b.map
      (ip: "ip \"${ip}\" is used by more than one node (${b.concatStringsSep ", " (b.map (n: toString n.name) (b.filter (n: n.ip == ip) allNodes))})")
      (duplicatesIn (b.filter b.isString ips))
    ++ lib.optional (isIP (cluster.vip or null) && b.elem cluster.vip ips)
      "vip \"${cluster.vip}\" is also the address of a node; the VIP must be a free address";

  networkErrors =
    if !(b.isAttrs net) then [ "network must be an attribute set" ]
    else
      b.map (k: "network.${k} is missing") (b.filter (k: !(net ? ${k})) netRequired)
      ++ lib.optionals (b.all (k: net ? ${k}) netRequired) (
        lib.optional (!(b.isString net.interface && b.match "[A-Za-z0-9][-A-Za-z0-9_.]{0,14}" net.interface != null))
          "network.interface ${show net.interface} is not a network interface name"
        ++ lib.optional (!(b.isInt net.prefixLength && net.prefixLength >= 1 && net.prefixLength <= 128))
          "network.prefixLength must be an integer 1-128 (got ${show net.prefixLength})"
        ++ lib.optional (b.isInt net.prefixLength && net.prefixLength > 32 && b.any isIPv4 (ips ++ [ (cluster.vip or null) ]))
          "network.prefixLength ${toString net.prefixLength} is longer than an IPv4 prefix (32)"
        ++ lib.optional (!(net.gateway == null || isIP net.gateway))
          "network.gateway must be an IP address or null (got ${show net.gateway})"
        ++ lib.optional (!(b.isList net.nameservers && b.all isIP net.nameservers))
          "network.nameservers must be a list of IP addresses"
        ++ lib.optional (!(b.isInt net.virtualRouterId && net.virtualRouterId >= 1 && net.virtualRouterId <= 255))
          "network.virtualRouterId must be an integer 1-255 (got ${show net.virtualRouterId})");

  fieldErrors =
    lib.optional (!(b.isString cluster.name && b.match dnsLabel cluster.name != null))
      "name ${show cluster.name} is not a DNS label"
    ++ lib.optional (!(cluster.vip == null || isIP cluster.vip)) "vip must be an IP address or null (got ${show cluster.vip})"
    ++ lib.optional (!(b.isBool cluster.initialized)) "initialized must be true or false (got ${show cluster.initialized})"
    ++ lib.optional (b.isList cluster.controlPlane && cluster.controlPlane == [ ]) "controlPlane must list at least one node"
    ++ lib.optional (!(b.isList cluster.authorizedKeys && b.all (k: b.isString k && k != "" && !(lib.hasInfix "\n" k)) cluster.authorizedKeys))
      "authorizedKeys must be a list of single-line public keys"
    ++ nodeErrors "controlPlane" cluster.controlPlane
    ++ nodeErrors "workers" cluster.workers
    ++ networkErrors
    ++ nameErrors
    ++ ipErrors;

  errors =
    if missing != [ ] then b.map (k: "the attribute `${k}' is missing") missing
    else fieldErrors;

  checked = value:
    if errors == [ ] then value
    else b.throw "cluster.nix is not valid:\n${lib.concatMapStrings (e: "  - ${e}\n") errors}";

  # ------------------------------------------------------------------ systems

  bracketed = ip: if lib.hasInfix ":" ip then "[${ip}]" else ip;
  firstControlPlane = b.head cluster.controlPlane;
  # every server but a bootstrapping first one, and every agent, joins through this address
  serverUrl = "https://${bracketed (if cluster.vip != null then cluster.vip else firstControlPlane.ip)}:6443";

  mkSystem = node: modules:
    nixpkgs.lib.nixosSystem {
      specialArgs.nico = { inherit cluster node serverUrl; };
      modules = [ disko.nixosModules.disko ./disko-config.nix ./common.nix ] ++ modules;
    };

  roles = [
    { list = "controlPlane"; role = "control-plane"; module = ./control-plane.nix; }
    { list = "workers"; role = "worker"; module = ./worker.nix; }
  ];

  nodeSystems = b.listToAttrs (b.concatMap
    (r: lib.imap0
      (index: n: {
        name = n.name;
        value = mkSystem { inherit (n) name ip; inherit (r) role; inherit index; } [ r.module ];
      })
      cluster.${r.list})
    roles);
in
checked (nodeSystems // { minimal = mkSystem null [ ./minimal.nix ]; })
