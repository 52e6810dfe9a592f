# Example cluster description. NICO renders this file for every KubernetesCluster and overwrites it; the flake only
# reads it. Every field is described in README.md ("The cluster.nix contract"). Secrets never appear here.
{
  name = "prod-cluster";
  vip = "192.168.1.100";
  initialized = false;
  network = {
    interface = "eth0";
    prefixLength = 24;
    gateway = "192.168.1.1";
    nameservers = [ "192.168.1.1" ];
    virtualRouterId = 51;
  };
  controlPlane = [
    { name = "cp-01"; ip = "192.168.1.101"; }
    { name = "cp-02"; ip = "192.168.1.102"; }
    { name = "cp-03"; ip = "192.168.1.103"; }
  ];
  workers = [
    { name = "worker-01"; ip = "192.168.1.201"; }
    { name = "worker-02"; ip = "192.168.1.202"; }
  ];
  authorizedKeys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICuKwCoB2f6A8Kx1XGYxgzHfkcMveMK8WZRNsnJ4ksnC nico@prod-cluster"
  ];
}
