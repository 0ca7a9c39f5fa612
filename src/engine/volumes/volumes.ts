/**
 * Volumes: named and anonymous volumes, bind mounts and tmpfs mounts of containers.
 *
 * Lifecycle of a volume: create (directory `<data-root>/volumes/<name>/_data` and its metadata,
 * made in a temporary directory and renamed into place) -> referenced by containers (create,
 * --volumes-from; counted again from container records at daemon start) -> mounted while a running
 * container uses it (only volumes with driver options: type/device/o, mounted on `_data`) -> released
 * (container removed) -> removed (refused while referenced) or pruned (every unreferenced volume).
 *
 * Lifecycle of a container's mounts: planned at container create (Binds, Mounts, VolumesFrom and
 * the image's VOLUMEs checked and turned into MountPoints kept in the container record) -> set up
 * at each start (bind sources made, driver volumes mounted, empty volumes filled from the image) ->
 * given to the OCI spec -> torn down when the run ends -> released at container removal (anonymous
 * volumes removed with `rm -v` and `--rm`).
 */

export const LOCAL_DRIVER = 'local';
/** The label Docker puts on anonymous volumes. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

/** A volume as stored (the local driver's metadata). */
export interface VolumeRecord {
  Name: string;
  Driver: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Options: Record<string, string> | null;
}

/** Docker's Volume object. */
export interface VolumeInfo {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string>;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local';
  UsageData?: { Size: number; RefCount: number };
}

export type MountType = 'volume' | 'bind' | 'tmpfs';

/** One mount of a container, as kept in its record (Docker's MountPoint). */
export interface MountPoint {
  Type: MountType;
  /** Volume name; '' for binds and tmpfs. */
  Name: string;
  /** Host path: the bind source or the volume's data directory; '' for tmpfs. */
  Source: string;
  Destination: string;
  Driver: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** A volume made for this container alone (removed with `rm -v`). */
  Anonymous?: boolean;
  /** Fill an empty volume from the image at first use. */
  CopyData?: boolean;
  /** A directory inside the volume mounted instead of its root. */
  Subpath?: string;
  /** bind without `r`: submounts of the source are not carried along. */
  NonRecursive?: boolean;
  /** tmpfs mount options (size=, mode=, ro). */
  TmpfsOptions?: string[];
  /** Options of a volume to create when it does not exist yet (--mount volume-opt=, labels). */
  CreateOptions?: { Options: Record<string, string>; Labels: Record<string, string> };
}

/** The part of a MountPoint that inspect and ps show. */
export function publicMount(m: MountPoint): Record<string, unknown> {
  return {
    Type: m.Type,
    ...(m.Type === 'volume' ? { Name: m.Name } : {}),
    Source: m.Source,
    Destination: m.Destination,
    ...(m.Type === 'volume' ? { Driver: m.Driver } : {}),
    Mode: m.Mode,
    RW: m.RW,
    Propagation: m.Propagation,
  };
}
