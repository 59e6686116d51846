# cmake --install: the runtime (libxkv.a, libxkv.so), xkv.h, the tools,
# the CMake package (find_package(xkv): xkv::xkv, xkv::xkv_shared,
# xkv::xkvgen, xkv_add_kernels) and xkv.pc. Both package files are
# relocatable, so `cmake --install build --prefix DIR` works for any DIR.
include(CMakePackageConfigHelpers)
set(XKV_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/xkv)

# xkv::xkv is the static library: an engine linked with it runs anywhere
# the system libraries exist; xkv::xkv_shared is libxkv.so.
set_target_properties(xkv PROPERTIES EXPORT_NAME xkv)
set_target_properties(xkv_shared PROPERTIES EXPORT_NAME xkv_shared)
# xkvgen finds libLLVM through the run path it was linked with
set_target_properties(xkvgen PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
set(XKV_INSTALL_TOOLS xkvgen xkv-info)
if(TARGET xkv-tune)
  list(APPEND XKV_INSTALL_TOOLS xkv-tune)
endif()
install(TARGETS xkv xkv_shared ${XKV_INSTALL_TOOLS} EXPORT xkvTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${PROJECT_SOURCE_DIR}/runtime/include/xkv.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT xkvTargets NAMESPACE xkv:: DESTINATION ${XKV_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/xkvConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/xkvConfig.cmake
  INSTALL_DESTINATION ${XKV_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/xkvConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/xkvConfig.cmake
        ${CMAKE_CURRENT_BINARY_DIR}/xkvConfigVersion.cmake
        ${CMAKE_CURRENT_LIST_DIR}/xkv_add_kernels.cmake
        DESTINATION ${XKV_CMAKE_DIR})

# the prefix relative to the .pc file's own place
file(RELATIVE_PATH XKV_PC_TO_PREFIX
     /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
string(REGEX REPLACE "/$" "" XKV_PC_TO_PREFIX ${XKV_PC_TO_PREFIX})
configure_file(${CMAKE_CURRENT_LIST_DIR}/xkv.pc.in
               ${CMAKE_CURRENT_BINARY_DIR}/xkv.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/xkv.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
