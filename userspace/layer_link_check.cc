// The main() of the ramjet_<layer>_link_check executables (userspace/CMakeLists.txt):
// each links every object of one layer against the layers below it, so a call into a
// layer above is an undefined reference. Never run.
int main() {
  return 0;
}
