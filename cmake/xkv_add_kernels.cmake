# xkv_add_kernels(TARGET tgt SOURCES kernels.xk [TARGETS host sm_90 ...]
#                 [EMBED] [NAME name] [KERNELS k1 k2 ...] [DEFINES D=64 ...])
#
# Compiles kernels.xk with xkvgen at build time, once per xkvgen target
# (default: host), for the program or library tgt (which links xkv::xkv or
# xkv::xkv_shared itself; its project enables C: the tables are C files).
#   EMBED    the artifacts go into tgt as C tables, so it needs no files at
#            run time: `const xkv_embedded NAME_<target>` for each target
#            (as xkvgen --embed NAME_<target>), for
#            xkv_registry_add_embedded, which answers XKV_ERR_TARGET for a
#            table built for another device. Without EMBED each target's
#            artifacts are a directory CMAKE_CURRENT_BINARY_DIR/NAME/<target>
#            for xkv_registry_load, and tgt gets NAME_DIR (upper-cased) defined
#            to CMAKE_CURRENT_BINARY_DIR/NAME.
#   NAME     the tables' prefix (a C identifier; default tgt_kernels)
#   KERNELS  only these kernels (xkvgen --kernel); default all
#   DEFINES  constexpr overrides (xkvgen -D NAME=VALUE)
# Uses xkv::xkvgen from the installed package, or the xkvgen target of
# the xkv build tree itself.

if(CMAKE_SCRIPT_MODE_FILE)
  # build-time helper: archive the host objects xkvgen wrote into DIR
  file(GLOB objs ${DIR}/*.o)
  file(REMOVE ${OUT})
  execute_process(COMMAND ${AR} rcs ${OUT} ${objs} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "xkv_add_kernels: ${AR} failed on ${DIR}")
  endif()
  return()
endif()

set(XKV_ADD_KERNELS_FILE ${CMAKE_CURRENT_LIST_FILE})

function(xkv_add_kernels)
  cmake_parse_arguments(A "EMBED" "TARGET;NAME"
                        "SOURCES;TARGETS;KERNELS;DEFINES" ${ARGN})
  set(fn xkv_add_kernels)
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${fn}: unknown arguments ${A_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT A_TARGET OR NOT TARGET ${A_TARGET})
    message(FATAL_ERROR "${fn}: TARGET '${A_TARGET}' is not a target")
  endif()
  list(LENGTH A_SOURCES nsrc)
  if(NOT nsrc EQUAL 1)
    message(FATAL_ERROR
      "${fn}(${A_TARGET}): SOURCES needs exactly one kernel file, got "
      "'${A_SOURCES}' (one xkv_add_kernels call per file, each its NAME)")
  endif()
  get_filename_component(src ${A_SOURCES} ABSOLUTE)
  if(NOT A_TARGETS)
    set(A_TARGETS host)
  endif()
  if(NOT A_NAME)
    string(MAKE_C_IDENTIFIER ${A_TARGET}_kernels A_NAME)
  endif()
  string(MAKE_C_IDENTIFIER ${A_NAME} ident)
  if(NOT ident STREQUAL A_NAME)
    message(FATAL_ERROR "${fn}(${A_TARGET}): NAME '${A_NAME}' is not a C "
                        "identifier")
  endif()
  if(TARGET xkv::xkvgen)
    set(gen xkv::xkvgen)
  elseif(TARGET xkvgen)
    set(gen xkvgen)
  else()
    message(FATAL_ERROR "${fn}: no xkvgen (find_package(xkv) first)")
  endif()

  set(opts)
  foreach(k ${A_KERNELS})
    list(APPEND opts --kernel ${k})
  endforeach()
  foreach(d ${A_DEFINES})
    list(APPEND opts -D ${d})
  endforeach()
  set(base ${CMAKE_CURRENT_BINARY_DIR}/${A_NAME})
  set(outputs)
  foreach(t ${A_TARGETS})
    set(dir ${base}/${t})
    set(cmd ${gen} ${src} --target ${t} ${opts} -o ${dir})
    set(lib)
    if(A_EMBED)
      set(table ${A_NAME}_${t})
      list(APPEND cmd --embed ${table})
      set(out ${dir}/${table}.c)
      if(t STREQUAL host)
        set(lib ${dir}/lib${table}.a)
        target_link_libraries(${A_TARGET} PRIVATE ${lib})
      endif()
      target_sources(${A_TARGET} PRIVATE ${out})
    else()
      set(out ${dir}/manifest.json)
    endif()
    set(archive)
    if(lib)
      set(archive COMMAND ${CMAKE_COMMAND} -DAR=${CMAKE_AR} -DDIR=${dir}
                  -DOUT=${lib} -P ${XKV_ADD_KERNELS_FILE})
    endif()
    add_custom_command(
      OUTPUT ${out} ${lib}
      COMMAND ${CMAKE_COMMAND} -E rm -rf ${dir}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
      COMMAND ${cmd} ${archive}
      DEPENDS ${src} ${gen}
      COMMENT "xkvgen ${A_SOURCES} --target ${t} (${A_NAME})" VERBATIM)
    list(APPEND outputs ${out} ${lib})
  endforeach()

  if(NOT A_EMBED)
    string(TOUPPER ${A_NAME}_DIR def)
    target_compile_definitions(${A_TARGET} PRIVATE ${def}="${base}")
  endif()
  # the host archive is a link input, not a source: a target orders it
  add_custom_target(${A_NAME}_gen DEPENDS ${outputs})
  add_dependencies(${A_TARGET} ${A_NAME}_gen)
endfunction()
