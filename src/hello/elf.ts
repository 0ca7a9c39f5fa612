/**
 * A minimal static x86-64 Linux executable, assembled by hand: write(1, msg, len); exit_group(0).
 * One PT_LOAD segment holds the ELF header, the program header, the code and the message.
 */
const BASE = 0x400000;
const EHDR = 64;
const PHDR = 56;

function code(messageOffsetFromLeaEnd: number, length: number): Buffer {
  const b = Buffer.alloc(33);
  let o = 0;
  const put = (...bytes: number[]) => bytes.forEach((x) => (b[o++] = x));
  put(0xb8, 1, 0, 0, 0); // mov eax, 1 (write)
  put(0xbf, 1, 0, 0, 0); // mov edi, 1 (stdout)
  put(0x48, 0x8d, 0x35); // lea rsi, [rip + rel32]
  b.writeInt32LE(messageOffsetFromLeaEnd, o);
  o += 4;
  put(0xba); // mov edx, imm32
  b.writeUInt32LE(length, o);
  o += 4;
  put(0x0f, 0x05); // syscall
  put(0xb8, 231, 0, 0, 0); // mov eax, 231 (exit_group)
  put(0x31, 0xff); // xor edi, edi
  put(0x0f, 0x05); // syscall
  return b;
}

export function buildX86_64Executable(message: Buffer): Buffer {
  const codeStart = EHDR + PHDR;
  const leaEnd = 17; // offset just past the lea instruction within the code
  const text = code(33 - leaEnd, message.length);
  const total = codeStart + text.length + message.length;
  const elf = Buffer.alloc(total);
  // ELF header
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // magic, 64-bit, little-endian, version 1, SYSV
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // EM_X86_64
  elf.writeUInt32LE(1, 20); // EV_CURRENT
  elf.writeBigUInt64LE(BigInt(BASE + codeStart), 24); // e_entry
  elf.writeBigUInt64LE(BigInt(EHDR), 32); // e_phoff
  elf.writeBigUInt64LE(0n, 40); // e_shoff
  elf.writeUInt32LE(0, 48); // e_flags
  elf.writeUInt16LE(EHDR, 52); // e_ehsize
  elf.writeUInt16LE(PHDR, 54); // e_phentsize
  elf.writeUInt16LE(1, 56); // e_phnum
  elf.writeUInt16LE(0, 58); // e_shentsize
  elf.writeUInt16LE(0, 60); // e_shnum
  elf.writeUInt16LE(0, 62); // e_shstrndx
  // Program header: PT_LOAD, R+X, the whole file at BASE
  const p = EHDR;
  elf.writeUInt32LE(1, p);
  elf.writeUInt32LE(5, p + 4);
  elf.writeBigUInt64LE(0n, p + 8);
  elf.writeBigUInt64LE(BigInt(BASE), p + 16);
  elf.writeBigUInt64LE(BigInt(BASE), p + 24);
  elf.writeBigUInt64LE(BigInt(total), p + 32);
  elf.writeBigUInt64LE(BigInt(total), p + 40);
  elf.writeBigUInt64LE(0x1000n, p + 48);
  text.copy(elf, codeStart);
  message.copy(elf, codeStart + text.length);
  return elf;
}
