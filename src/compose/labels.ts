/** The labels by which Docker Compose (v1 and v2) and berth compose recognise a project's objects. */
export const PROJECT = 'com.docker.compose.project';
export const SERVICE = 'com.docker.compose.service';
export const NUMBER = 'com.docker.compose.container-number';
export const ONEOFF = 'com.docker.compose.oneoff';
export const CONFIG_HASH = 'com.docker.compose.config-hash';
export const WORKING_DIR = 'com.docker.compose.project.working_dir';
export const CONFIG_FILES = 'com.docker.compose.project.config_files';
export const VERSION = 'com.docker.compose.version';
export const NETWORK = 'com.docker.compose.network';
export const VOLUME = 'com.docker.compose.volume';
export const DEPENDS_ON = 'com.docker.compose.depends_on';
export const IMAGE = 'com.docker.compose.image';

/** The Compose version our labels claim: v2 semantics (docker-compose 1.29 compares it with 1.21.0). */
export const COMPOSE_VERSION = '2.0.0';
export const SLUG = 'com.docker.compose.slug';
