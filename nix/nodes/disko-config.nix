# Disk layout (disko): on `nico.disk.device` (default /dev/sda)
#
#   1M    BIOS boot (EF02)          for GRUB on BIOS machines
#   512M  EFI system (EF00), vfat   /boot
#   10G   ext4                      /
#   rest  LVM physical volume       volume group vg0 with the thin pool `thinpool` (100%FREE), for local volumes
#
# disko derives fileSystems."/" and fileSystems."/boot" (and the GRUB device) from this, so no module of this flake
# declares fileSystems. There is no swap partition (Kubernetes).
{ config, lib, ... }:
{
  options.nico.disk.device = lib.mkOption {
    type = lib.types.str;
    default = "/dev/sda";
    example = "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S649NF0R123456";
    description = "The disk disko partitions (everything on it is lost on a full install).";
  };

  config.disko.devices = {
    disk.main = {
      type = "disk";
      device = config.nico.disk.device;
      content = {
        type = "gpt";
        partitions = {
          boot = {
            priority = 1;
            size = "1M";
            type = "EF02";
          };
          ESP = {
            priority = 2;
            size = "512M";
            type = "EF00";
            content = {
              type = "filesystem";
              format = "vfat";
              mountpoint = "/boot";
              mountOptions = [ "umask=0077" ];
            };
          };
          root = {
            priority = 3;
            size = "10G";
            content = {
              type = "filesystem";
              format = "ext4";
              mountpoint = "/";
            };
          };
          lvm = {
            priority = 4;
            size = "100%";
            content = {
              type = "lvm_pv";
              vg = "vg0";
            };
          };
        };
      };
    };
    lvm_vg.vg0 = {
      type = "lvm_vg";
      lvs.thinpool = {
        size = "100%FREE";
        lvm_type = "thin-pool";
      };
    };
  };
}
